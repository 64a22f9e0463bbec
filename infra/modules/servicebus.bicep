// Service Bus namespace and the three queues the sync reads. Entra ID only (disableLocalAuth): no SAS key exists
// that could leak, and nothing in the app settings or outputs can be a connection string.
//
// Every queue property that decides delivery semantics is spelled out as a literal rather than left to the
// service default, so that a reviewer reads the behaviour here and tests/infra can pin it.
//
// A Dataverse Service Bus service endpoint authenticates with a SAS key or token, which disableLocalAuth rules
// out: with this template Dataverse reaches sync-changes through the HTTPS webhook function instead. Posting
// directly needs a Send-only SAS rule on sync-changes and local auth turned back on: a deliberate, reviewed change
// (docs/deploy.md, "Direct Service Bus endpoint").

param name string
param location string
param tags object = {}

@description('Queue for change notifications from both systems (webhooks, feeds, catch-up).')
param changesQueueName string = 'sync-changes'

@description('Queue for Quick Sync backfill pages.')
param quickSyncQueueName string = 'quick-sync'

@description('Queue for the Marketo flow steps (sync person, change owner, create task).')
param flowStepsQueueName string = 'flow-steps'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    minimumTlsVersion: '1.2'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// Both queues, property by property (docs/host-json.md explains how they pair with host.json):
//   lockDuration PT5M     the maximum. The batch trigger (maxMessageBatchSize 300) does not renew locks, so a lock
//                         must outlast the slowest batch, Marketo rate-limit back-off included.
//   maxDeliveryCount 10   a poison message reaches the dead-letter queue after 10 failed runs: enough to ride out a
//                         short outage of either API, few enough that a poison message surfaces quickly.
//   defaultMessageTimeToLive P7D + deadLetteringOnMessageExpiration: a week-old change is stale (the catch-up timer
//                         re-reads current state), so it is moved to the DLQ for inspection instead of silently dropped.
//   requiresDuplicateDetection + PT10M: webhook retries and overlapping feed/catch-up pages carry the same MessageId;
//                         the broker drops the repeat. Cannot be changed after creation.
//   requiresSession false: ordering per record is handled by the state store's ETags, not by sessions.
resource changesQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: changesQueueName
  properties: {
    lockDuration: 'PT5M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'P7D'
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    requiresSession: false
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}

// Quick Sync and resync nudges (functions/jobs.py run_nudged_jobs): a message says "work the jobs now"; the job rows
// in the state store hold the work, and the Quick Sync timer works them anyway if a nudge is lost or dead-lettered.
resource quickSyncQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: quickSyncQueueName
  properties: {
    lockDuration: 'PT5M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'P7D'
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    requiresSession: false
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}

// Marketo flow-step nudges (functions/flowsteps.py run_flow_step): each run is recorded in the state store before
// its message is sent, and the flow-step sweep re-sends unfinished runs if a message is lost or dead-lettered.
resource flowStepsQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: flowStepsQueueName
  properties: {
    lockDuration: 'PT5M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'P7D'
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    requiresSession: false
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}

output name string = namespace.name
output id string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output changesQueueName string = changesQueue.name
output quickSyncQueueName string = quickSyncQueue.name
output flowStepsQueueName string = flowStepsQueue.name
