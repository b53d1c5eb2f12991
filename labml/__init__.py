"""labml package."""
