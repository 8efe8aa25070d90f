"""Ray actors of the live runtime: data feed, strategy hosts, risk, broker, journal reader."""
