"""Driving motions and (later) generated training videos."""
