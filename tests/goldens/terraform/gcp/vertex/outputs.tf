output "data_bucket" {
  description = "Bucket holding data."
  value       = google_storage_bucket.data.name
}

output "artifacts_bucket" {
  description = "Bucket holding models, reports and logs."
  value       = google_storage_bucket.artifacts.name
}

output "storage_key" {
  description = "Cloud KMS key encrypting both buckets."
  value       = local.kms_key_id
}

output "pipeline_identity" {
  description = "Service-account email of the pipeline workload (ServiceAccount credit-risk-pipeline)."
  value       = google_service_account.pipeline.email
}

output "training_identity" {
  description = "Service-account email of the training workload (ServiceAccount credit-risk-training)."
  value       = google_service_account.training.email
}

output "serving_identity" {
  description = "Service-account email of the serving workload (ServiceAccount credit-risk-serving)."
  value       = google_service_account.serving.email
}

output "monitoring_identity" {
  description = "Service-account email of the monitoring workload (ServiceAccount credit-risk-monitoring)."
  value       = google_service_account.monitoring.email
}

output "endpoint_name" {
  description = "Vertex AI endpoint serving the model."
  value       = google_vertex_ai_endpoint.main.name
}
