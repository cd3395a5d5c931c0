"""The live dashboard: one page served by the worker's web server, fed by ``queries``."""
