"""Device calibration (gain/offset, σa, σm with confidence intervals). Arrives with its own issue."""
