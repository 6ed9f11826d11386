"""Training: the protocol/trainer seam, the shared loop and the entry point."""
