"""In-process simulators of the services the product talks to, written as httpx handlers."""
