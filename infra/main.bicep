// Dynamics 365 (Dataverse) <-> Marketo Engage sync: everything `azd up` provisions.
//
// Subscription-scoped so that azd creates the resource group too (rg-<environmentName>). Resources live in
// modules/ (one file per service, plain resources, no registry modules: the templates are checked offline by
// checkov and tests/infra, which must see every property).

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; also seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Region for every resource. Must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person or pipeline running azd (azd fills AZURE_PRINCIPAL_ID); granted Key Vault Secrets Officer.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

param resourceGroupName string = ''

// --- Scale -----------------------------------------------------------------------------------------------------
@description('Max on-demand instances per Flex scale group. Marketo\'s limits are shared, so keep this small.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 4

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

// --- Timers (NCRONTAB: second minute hour day month day-of-week) ---------------------------------------------------
param marketoFeedSchedule string = '*/30 * * * * *'
param dataverseCatchupSchedule string = '0 */1 * * * *'
param quickSyncSchedule string = '0 */1 * * * *'

// --- Dataverse -----------------------------------------------------------------------------------------------------
@description('Environment URL, e.g. https://contoso.crm.dynamics.com')
param dataverseUrl string

@description('Entra tenant of the Dataverse environment; defaults to the deployment tenant.')
param dataverseTenantId string = ''

@description('Application (client) id of the Entra app registration used as the Dataverse application user.')
param dataverseClientId string

@secure()
param dataverseClientSecret string = ''

@secure()
@minLength(32)
param dataverseWebhookSecret string

@minValue(1)
@maxValue(52)
param dataverseMaxConcurrency int = 16

// --- Marketo -------------------------------------------------------------------------------------------------------
@description('REST endpoint, e.g. https://123-ABC-456.mktorest.com')
param marketoBaseUrl string

@description('Identity endpoint, e.g. https://123-ABC-456.mktorest.com/identity')
param marketoIdentityUrl string

param marketoClientId string

@secure()
param marketoClientSecret string = ''

@secure()
@minLength(32)
param marketoWebhookSecret string

@minValue(1)
@maxValue(100)
param marketoCallsPer20s int = 100

@minValue(1)
@maxValue(10)
param marketoMaxConcurrency int = 10

@description('Fraction of Marketo\'s limits left unused for other integrations (a string: Bicep has no float).')
param marketoHeadroom string = '0.1'

@minValue(1)
param marketoDailyQuota int = 50000

param mappingFile string = 'config/mapping.json'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-sync-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-sync-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-${resourceToken}'
    location: location
    tags: tags
    changesQueueName: 'sync-changes'
    quickSyncQueueName: 'quick-sync'
    flowStepsQueueName: 'flow-steps'
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    dataverseClientSecret: dataverseClientSecret
    marketoClientSecret: marketoClientSecret
    dataverseWebhookSecret: dataverseWebhookSecret
    marketoWebhookSecret: marketoWebhookSecret
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    serviceBusNamespaceName: serviceBus.outputs.name
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    developerPrincipalId: principalId
    developerPrincipalType: principalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  // The host starts as soon as its settings land: let it find its roles already in place.
  dependsOn: [
    roles
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    tableEndpoint: storage.outputs.tableEndpoint
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    changesQueueName: serviceBus.outputs.changesQueueName
    quickSyncQueueName: serviceBus.outputs.quickSyncQueueName
    flowStepsQueueName: serviceBus.outputs.flowStepsQueueName
    keyVaultUri: keyVault.outputs.uri
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    marketoFeedSchedule: marketoFeedSchedule
    dataverseCatchupSchedule: dataverseCatchupSchedule
    quickSyncSchedule: quickSyncSchedule
    dataverseUrl: dataverseUrl
    dataverseTenantId: empty(dataverseTenantId) ? tenant().tenantId : dataverseTenantId
    dataverseClientId: dataverseClientId
    dataverseMaxConcurrency: dataverseMaxConcurrency
    marketoBaseUrl: marketoBaseUrl
    marketoIdentityUrl: marketoIdentityUrl
    marketoClientId: marketoClientId
    marketoCallsPer20s: marketoCallsPer20s
    marketoMaxConcurrency: marketoMaxConcurrency
    marketoHeadroom: marketoHeadroom
    marketoDailyQuota: marketoDailyQuota
    mappingFile: mappingFile
  }
}

// Outputs land in the azd environment (.azure/<env>/.env). Names and endpoints only: no key, no secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output SYNC_CHANGES_QUEUE string = serviceBus.outputs.changesQueueName
output QUICK_SYNC_QUEUE string = serviceBus.outputs.quickSyncQueueName
output FLOW_STEPS_QUEUE string = serviceBus.outputs.flowStepsQueueName
output STATE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
