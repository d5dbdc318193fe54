# Azure ML online endpoint: strategy 'canary' expressed as its traffic (and mirror
# traffic) per deployment; the deployments themselves are created per model version.
resource "azapi_resource" "endpoint" {
  type      = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints@2024-04-01"
  name      = local.prefix
  parent_id = var.ml_workspace_id
  location  = var.region

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.serving.id]
  }

  body = {
    properties = {
      authMode            = "AADToken"
      publicNetworkAccess = "Disabled"
      traffic = {
        stable = 90
        canary = 10
      }
    }
  }
}
