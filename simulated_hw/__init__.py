"""simulated_hw package."""
