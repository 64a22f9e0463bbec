"""A simulated Dataverse organisation (Web API, Entra authority, webhooks) as one ``httpx`` handler."""

from local.simulators.dataverse.simulator import CapturedWebhooks, DataverseSimulator, InjectedFault

__all__ = ["CapturedWebhooks", "DataverseSimulator", "InjectedFault"]
