output "data_bucket" {
  description = "Bucket holding data."
  value       = aws_s3_bucket.data.bucket
}

output "artifacts_bucket" {
  description = "Bucket holding models, reports and logs."
  value       = aws_s3_bucket.artifacts.bucket
}

output "storage_key" {
  description = "Customer-managed KMS key encrypting both buckets."
  value       = local.kms_key_arn
}

output "pipeline_identity" {
  description = "IAM role ARN of the pipeline workload (ServiceAccount credit-risk-pipeline)."
  value       = aws_iam_role.pipeline.arn
}

output "training_identity" {
  description = "IAM role ARN of the training workload (ServiceAccount credit-risk-training)."
  value       = aws_iam_role.training.arn
}

output "serving_identity" {
  description = "IAM role ARN of the serving workload (ServiceAccount credit-risk-serving)."
  value       = aws_iam_role.serving.arn
}

output "monitoring_identity" {
  description = "IAM role ARN of the monitoring workload (ServiceAccount credit-risk-monitoring)."
  value       = aws_iam_role.monitoring.arn
}

output "endpoint_name" {
  description = "SageMaker endpoint serving the model."
  value       = aws_sagemaker_endpoint.main.name
}
