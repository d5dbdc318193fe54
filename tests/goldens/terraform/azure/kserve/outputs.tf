output "data_bucket" {
  description = "Container holding data."
  value       = azurerm_storage_container.data.name
}

output "artifacts_bucket" {
  description = "Container holding models, reports and logs."
  value       = azurerm_storage_container.artifacts.name
}

output "storage_account" {
  description = "Storage account holding both containers."
  value       = azurerm_storage_account.main.name
}

output "storage_key" {
  description = "Key Vault key encrypting the storage account."
  value       = azurerm_key_vault_key.storage.versionless_id
}

output "pipeline_identity" {
  description = "Client id of the pipeline workload identity (ServiceAccount credit-risk-pipeline)."
  value       = azurerm_user_assigned_identity.pipeline.client_id
}

output "training_identity" {
  description = "Client id of the training workload identity (ServiceAccount credit-risk-training)."
  value       = azurerm_user_assigned_identity.training.client_id
}

output "serving_identity" {
  description = "Client id of the serving workload identity (ServiceAccount credit-risk-serving)."
  value       = azurerm_user_assigned_identity.serving.client_id
}

output "monitoring_identity" {
  description = "Client id of the monitoring workload identity (ServiceAccount credit-risk-monitoring)."
  value       = azurerm_user_assigned_identity.monitoring.client_id
}
