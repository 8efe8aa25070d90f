"""Ray-free domain core of raytrader: data, accounting, fill model, risk rules, statistics."""
