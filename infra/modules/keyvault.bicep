// Key Vault for the four secrets the app reads through Key Vault references. RBAC mode only (no access
// policies), soft delete with purge protection so a deleted secret can be recovered and cannot be destroyed early.
//
// Secret names use dashes (Key Vault forbids underscores); the app setting names (DATAVERSE_CLIENT_SECRET, ...)
// are mapped to them in functionapp.bicep.

param name string
param location string
param tags object = {}

@description('Entra client secret of the Dataverse app registration. Empty: not written (certificate auth, or set later).')
@secure()
param dataverseClientSecret string = ''

@description('Client secret of the Marketo LaunchPoint custom service. Empty: not written (set later).')
@secure()
param marketoClientSecret string = ''

@description('Shared secret Dataverse sends in the webhook header. Required: an unresolved reference must never become the secret.')
@secure()
@minLength(32)
param dataverseWebhookSecret string

@description('Shared secret Marketo sends in the webhook header. Required for the same reason.')
@secure()
@minLength(32)
param marketoWebhookSecret string

@description('Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references over the public endpoint unless the app has VNet integration; access is RBAC only
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// One resource per secret (not a loop over a variable), so no secure value ever passes through a variable.
resource dataverseClientSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(dataverseClientSecret)) {
  // checkov:skip=CKV_AZURE_41: expiry belongs to the credential's issuer (Entra, Marketo); rotation is documented in docs/deploy.md
  // checkov:skip=CKV_AZURE_114: false positive: contentType is set; checkov does not read the properties of a conditional (if) resource
  parent: vault
  name: 'dataverse-client-secret'
  properties: {
    value: dataverseClientSecret
    contentType: 'text/plain'
  }
}

resource marketoClientSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(marketoClientSecret)) {
  // checkov:skip=CKV_AZURE_41: expiry belongs to the credential's issuer (Entra, Marketo); rotation is documented in docs/deploy.md
  // checkov:skip=CKV_AZURE_114: false positive: contentType is set; checkov does not read the properties of a conditional (if) resource
  parent: vault
  name: 'marketo-client-secret'
  properties: {
    value: marketoClientSecret
    contentType: 'text/plain'
  }
}

resource dataverseWebhookSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: a webhook secret is shared with Dataverse/Marketo and rotated together with their registration (docs/deploy.md)
  parent: vault
  name: 'dataverse-webhook-secret'
  properties: {
    value: dataverseWebhookSecret
    contentType: 'text/plain'
  }
}

resource marketoWebhookSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: a webhook secret is shared with Dataverse/Marketo and rotated together with their registration (docs/deploy.md)
  parent: vault
  name: 'marketo-webhook-secret'
  properties: {
    value: marketoWebhookSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
