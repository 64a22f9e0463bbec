// The Function App on the Flex Consumption plan (Linux, Python 3.11) and its app settings.
//
// Every connection is identity-based through the one user-assigned identity: host storage
// (AzureWebJobsStorage__*), the Service Bus trigger (ServiceBusConnection__*), the Table state store
// (STATE_TABLE_ENDPOINT + AZURE_CLIENT_ID), Key Vault references (keyVaultReferenceIdentity) and Application
// Insights ingestion (APPLICATIONINSIGHTS_AUTHENTICATION_STRING). No app setting holds a key or a connection
// string with a credential in it; the four secrets are Key Vault references.
//
// Flex Consumption takes the runtime from functionAppConfig.runtime: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION must not be set as app settings on this plan.

param name string
param planName string
param location string
param tags object = {}

@description('azd finds the app to deploy by this tag; it must match the service name in azure.yaml.')
param serviceName string = 'sync'

// --- Identity ---------------------------------------------------------------------------------------------------
param identityId string
param identityClientId string

// --- Where things are -------------------------------------------------------------------------------------------
param storageAccountName string
param deploymentContainerUrl string
param tableEndpoint string
param applicationInsightsName string
param serviceBusFullyQualifiedNamespace string
param changesQueueName string
param quickSyncQueueName string
param flowStepsQueueName string
param keyVaultUri string

// --- Scale ------------------------------------------------------------------------------------------------------
@description('Upper bound of on-demand instances per Flex per-function scale group; also FUNCTIONS_MAX_INSTANCES.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP requests per instance (webhooks only verify and enqueue).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

// --- Schedules (NCRONTAB, six fields) ----------------------------------------------------------------------------
param marketoFeedSchedule string
param dataverseCatchupSchedule string
param quickSyncSchedule string
@description('The pending sweep: re-enqueues due pending marks and probes a service whose circuit is open (docs/durability.md).')
param pendingSweepSchedule string = '45 */1 * * * *'
@description('The record history pruning: deletes history days older than HISTORY_RETENTION_DAYS (docs/record-history.md).')
param historyPruneSchedule string = '0 20 * * * *'
@description('The verification sweep: reads one-way records back from Marketo and restores those edited there (docs/durability.md).')
param verifySweepSchedule string = '30 */5 * * * *'
@description('Marketo calls the verification sweep may make per run (300 records each).')
@minValue(0)
@maxValue(100)
param verifySweepMaxCalls int = 3

// --- Product settings -------------------------------------------------------------------------------------------
param dataverseUrl string
param dataverseTenantId string
param dataverseClientId string
param dataverseMaxConcurrency int
param marketoBaseUrl string
param marketoIdentityUrl string
param marketoClientId string
param marketoCallsPer20s int
param marketoMaxConcurrency int
param marketoHeadroom string
param marketoDailyQuota int
param mappingFile string

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex zone redundancy exists only in some regions and needs always-ready instances; a zone outage only delays work (Service Bus keeps it, catch-up timers re-find it)
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Dataverse and Marketo call the webhooks from the internet; each request is authenticated (function key + shared-secret header)
  // checkov:skip=CKV_AZURE_17: Dataverse and Marketo webhooks cannot present client certificates; requests are authenticated by function key + shared-secret header
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero by design; Service Bus holds the work while no instance runs, so no standing instance is needed for failover
  // checkov:skip=CKV_AZURE_213: App Service health check probes standing instances; a scale-to-zero Flex app has none, /api/health is for external probes (docs/deploy.md)
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      remoteDebuggingEnabled: false
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: false positive: this sites/config is 'appsettings', not 'web'; webhooks are authenticated in code (function key + shared-secret header), not by App Service auth
  // checkov:skip=CKV_AZURE_63: false positive: 'appsettings' config has no logging properties; the app logs to Application Insights
  // checkov:skip=CKV_AZURE_65: false positive: 'appsettings' config has no logging properties; errors go to Application Insights
  // checkov:skip=CKV_AZURE_66: false positive: 'appsettings' config has no tracing properties; requests are traced in Application Insights
  // checkov:skip=CKV_AZURE_80: false positive: a Python app; .NET Framework version does not apply
  // checkov:skip=CKV_AZURE_88: false positive: Flex Consumption has no Azure Files content share; the package lives in blob storage
  // checkov:skip=CKV_AZURE_222: false positive: public network access is a site property (skipped there with its reason), not an app setting
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Host storage, identity-based.
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId

    // Telemetry: the connection string names the resource (its ikey is not a secret and cannot ingest on its
    // own: local auth is disabled on the component); ingestion authenticates as the identity.
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

    // The identity azure-identity's DefaultAzureCredential picks in the app (Table state store, Service Bus SDK).
    AZURE_CLIENT_ID: identityClientId

    // Service Bus trigger connection, identity-based.
    ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identityClientId
    SYNC_CHANGES_QUEUE: changesQueueName
    QUICK_SYNC_QUEUE: quickSyncQueueName
    FLOW_STEPS_QUEUE: flowStepsQueueName

    // Timers.
    MARKETO_FEED_SCHEDULE: marketoFeedSchedule
    DATAVERSE_CATCHUP_SCHEDULE: dataverseCatchupSchedule
    QUICK_SYNC_SCHEDULE: quickSyncSchedule
    PENDING_SWEEP_SCHEDULE: pendingSweepSchedule
    HISTORY_PRUNE_SCHEDULE: historyPruneSchedule
    VERIFY_SWEEP_SCHEDULE: verifySweepSchedule
    VERIFY_SWEEP_MAX_CALLS: string(verifySweepMaxCalls)

    // State store.
    STATE_STORE: 'table'
    STATE_TABLE_ENDPOINT: tableEndpoint

    // The Python worker's malloc: a fixed mmap threshold gives large buffers back when freed, so peak memory stays
    // flat under a 1M-record Quick Sync (shared/memory.py).
    MALLOC_MMAP_THRESHOLD_: '131072'

    // The product. Secrets are versionless Key Vault references: a rotated secret is picked up without a
    // redeploy (App Service re-reads references within a day, or at once on restart).
    SYNC_TARGET: 'live'
    SYNC_MAPPING_FILE: mappingFile
    FUNCTIONS_MAX_INSTANCES: string(maximumInstanceCount)
    // Processes that may call Marketo (and Dataverse) at once: every instance of the Service Bus scale group,
    // plus the Marketo feed and Quick Sync timers, which Flex may run on instances of their own. Deprecated for
    // Marketo, whose budget every instance shares through the state store (docs/budgets.md): it only sizes the
    // fixed per-process share used while the store is unreachable, and Dataverse's per-process concurrency.
    MARKETO_CALLERS: string(maximumInstanceCount + 2)

    DATAVERSE_URL: dataverseUrl
    DATAVERSE_TENANT_ID: dataverseTenantId
    DATAVERSE_CLIENT_ID: dataverseClientId
    DATAVERSE_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/dataverse-client-secret)'
    DATAVERSE_MAX_CONCURRENCY: string(dataverseMaxConcurrency)
    DATAVERSE_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/dataverse-webhook-secret)'

    MARKETO_BASE_URL: marketoBaseUrl
    MARKETO_IDENTITY_URL: marketoIdentityUrl
    MARKETO_CLIENT_ID: marketoClientId
    MARKETO_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/marketo-client-secret)'
    MARKETO_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/marketo-webhook-secret)'
    MARKETO_CALLS_PER_20S: string(marketoCallsPer20s)
    MARKETO_MAX_CONCURRENCY: string(marketoMaxConcurrency)
    MARKETO_HEADROOM: marketoHeadroom
    MARKETO_DAILY_QUOTA: string(marketoDailyQuota)
    MARKETO_BUDGET: 'shared'
    MARKETO_LIVE_RESERVE_PERCENT: '30'
    MARKETO_DAILY_RESERVE_PERCENT: '10'
  }
}

// Basic (user/password) publishing is off for FTP and SCM: azd deploys with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
