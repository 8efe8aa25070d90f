"""The benchmark suite: each workload prints its figures beside references from the same run."""
