"""Walking Noise: per-site and global noise sweeps, midpoint fits, results store, plots."""
