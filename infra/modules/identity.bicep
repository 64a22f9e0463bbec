// The one identity the Function App uses for everything: host storage, deployment package, Service Bus trigger,
// Table state store, Key Vault references and Application Insights ingestion. User-assigned so that the role
// assignments exist before the app first starts (a system-assigned identity only exists after the site does).

param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
