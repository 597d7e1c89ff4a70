"""Shared helpers of the conformance suite: RESP wire handling, server processes, reporting."""
