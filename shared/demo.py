"""Placeholder until the decision core lands."""
