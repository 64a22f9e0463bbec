"""Setup commands: register the Dataverse webhook steps, print the Marketo webhook, validate the wiring."""
