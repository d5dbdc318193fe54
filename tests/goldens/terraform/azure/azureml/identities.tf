resource "azurerm_user_assigned_identity" "pipeline" {
  name                = "${local.prefix}-pipeline"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
}

resource "azurerm_federated_identity_credential" "pipeline" {
  name                = "${local.prefix}-pipeline"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.pipeline.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.k8s_namespace}:credit-risk-pipeline"
}

resource "azurerm_role_assignment" "pipeline_data_storage_blob_data_contributor" {
  scope                = azurerm_storage_container.data.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.pipeline.principal_id
}

resource "azurerm_role_assignment" "pipeline_artifacts_storage_blob_data_contributor" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.pipeline.principal_id
}

resource "azurerm_user_assigned_identity" "training" {
  name                = "${local.prefix}-training"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
}

resource "azurerm_federated_identity_credential" "training" {
  name                = "${local.prefix}-training"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.training.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.k8s_namespace}:credit-risk-training"
}

resource "azurerm_role_assignment" "training_data_storage_blob_data_reader" {
  scope                = azurerm_storage_container.data.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.training.principal_id
}

resource "azurerm_role_assignment" "training_artifacts_storage_blob_data_contributor" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.training.principal_id
}

resource "azurerm_user_assigned_identity" "serving" {
  name                = "${local.prefix}-serving"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
}

resource "azurerm_federated_identity_credential" "serving" {
  name                = "${local.prefix}-serving"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.serving.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.k8s_namespace}:credit-risk-serving"
}

resource "azurerm_role_assignment" "serving_artifacts_storage_blob_data_reader" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.serving.principal_id
}

resource "azurerm_user_assigned_identity" "monitoring" {
  name                = "${local.prefix}-monitoring"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
}

resource "azurerm_federated_identity_credential" "monitoring" {
  name                = "${local.prefix}-monitoring"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.monitoring.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.k8s_namespace}:credit-risk-monitoring"
}

resource "azurerm_role_assignment" "monitoring_data_storage_blob_data_reader" {
  scope                = azurerm_storage_container.data.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.monitoring.principal_id
}

resource "azurerm_role_assignment" "monitoring_artifacts_storage_blob_data_contributor" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.monitoring.principal_id
}

resource "azurerm_role_assignment" "monitoring_group_monitoring_metrics_publisher" {
  scope                = azurerm_resource_group.main.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_user_assigned_identity.monitoring.principal_id
}

resource "azurerm_role_assignment" "access_data_scientist_group_risk_ds_artifacts_storage_blob_data_contributor" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = var.principal_ids["group:risk-ds"]
}

resource "azurerm_role_assignment" "access_data_scientist_group_risk_ds_data_storage_blob_data_reader" {
  scope                = azurerm_storage_container.data.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = var.principal_ids["group:risk-ds"]
}

resource "azurerm_role_assignment" "access_data_scientist_group_risk_ds_group_monitoring_reader" {
  scope                = azurerm_resource_group.main.id
  role_definition_name = "Monitoring Reader"
  principal_id         = var.principal_ids["group:risk-ds"]
}

resource "azurerm_role_assignment" "access_data_scientist_group_risk_ds_sa_training_managed_identity_operator" {
  scope                = azurerm_user_assigned_identity.training.id
  role_definition_name = "Managed Identity Operator"
  principal_id         = var.principal_ids["group:risk-ds"]
}

resource "azurerm_role_assignment" "access_release_manager_group_risk_release_artifacts_storage_blob_data_contributor" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = var.principal_ids["group:risk-release"]
}

resource "azurerm_role_assignment" "access_release_manager_group_risk_release_artifacts_storage_blob_data_reader" {
  scope                = azurerm_storage_container.artifacts.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = var.principal_ids["group:risk-release"]
}

resource "azurerm_role_assignment" "access_release_manager_group_risk_release_sa_serving_managed_identity_operator" {
  scope                = azurerm_user_assigned_identity.serving.id
  role_definition_name = "Managed Identity Operator"
  principal_id         = var.principal_ids["group:risk-release"]
}
