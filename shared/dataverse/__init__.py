"""Dataverse adapter: Web API client (httpx + MSAL) and the RemoteExecutionContext parser."""
