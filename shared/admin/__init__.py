"""The admin CLI (``python -m shared.admin``): the app's HTTP API for terminals and scripts, local or deployed.

It speaks only HTTP (httpx) to the routes the admin console uses too, so it imports nothing of the product but
this package: the same command works against ``make run`` and a Function App in Azure.
"""
