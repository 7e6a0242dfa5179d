"""Webhooks: signed callbacks with retries, and the checks that keep them off private networks."""
