"""The product's code: a pure core (``shared.core``) inside, I/O adapters around it."""
