variable "name" {
  description = "Model name; prefixes every resource."
  type        = string
  default     = "credit-risk"
}

variable "environment" {
  description = "Environment (dev, staging, prod): suffix of resource names and a tag."
  type        = string
}

variable "region" {
  description = "AWS region of every resource."
  type        = string
  default     = "eu-west-1"
}

variable "k8s_namespace" {
  description = "Kubernetes namespace whose ServiceAccounts assume the workload roles."
  type        = string
  default     = "credit-risk"
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
}

variable "oidc_provider" {
  description = "The OIDC provider's URL without https:// (e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC)."
  type        = string
}

variable "budget_alert_emails" {
  description = "Who receives budget alerts."
  type        = list(string)
  default     = ["risk-ml@example.com"]
}

variable "kms_key_arn" {
  description = "Existing customer-managed KMS key for storage; empty creates one."
  type        = string
  default     = ""
}

variable "serving_image" {
  description = "Inference container image (ECR URI) the endpoint runs."
  type        = string
}
