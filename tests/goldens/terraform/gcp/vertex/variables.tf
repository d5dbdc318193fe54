variable "name" {
  description = "Model name; prefixes every resource."
  type        = string
  default     = "credit-risk"
}

variable "environment" {
  description = "Environment (dev, staging, prod): suffix of resource names and a label."
  type        = string
}

variable "project_id" {
  description = "Google Cloud project of every resource."
  type        = string
}

variable "region" {
  description = "Google Cloud region of every resource."
  type        = string
  default     = "europe-west1"
}

variable "k8s_namespace" {
  description = "Kubernetes namespace whose ServiceAccounts impersonate the workload identities."
  type        = string
  default     = "credit-risk"
}

variable "billing_account" {
  description = "Billing account id the budgets watch."
  type        = string
}

variable "budget_notification_channels" {
  description = "Monitoring notification channel ids that receive budget alerts."
  type        = list(string)
  default     = []
}

variable "kms_key_id" {
  description = "Existing Cloud KMS key for storage; empty creates one."
  type        = string
  default     = ""
}

variable "deployed_model_ids" {
  description = "Deployed model id per traffic variant of the Vertex AI endpoint."
  type        = map(string)
  default     = {}
}
