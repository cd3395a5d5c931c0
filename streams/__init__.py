"""Faust app, agents and attribution of the GMV pipeline."""
