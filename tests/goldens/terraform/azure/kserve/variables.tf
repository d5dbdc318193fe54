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
  description = "Azure region of every resource."
  type        = string
  default     = "westeurope"
}

variable "k8s_namespace" {
  description = "Kubernetes namespace whose ServiceAccounts use the workload identities."
  type        = string
  default     = "credit-risk"
}

variable "oidc_issuer_url" {
  description = "OIDC issuer URL of the AKS cluster (workload identity federation)."
  type        = string
}

variable "principal_ids" {
  description = "Entra ID object id per access member (e.g. \"group:risk-ds\")."
  type        = map(string)
  default     = {}
}

variable "budget_alert_emails" {
  description = "Who receives budget alerts."
  type        = list(string)
  default     = ["risk-ml@example.com"]
}

variable "budget_start_date" {
  description = "First day of the budget period, RFC 3339 (e.g. 2026-01-01T00:00:00Z)."
  type        = string
}

variable "allowed_ip_ranges" {
  description = "Public IP ranges allowed through the storage firewall (private endpoints always are)."
  type        = list(string)
  default     = []
}
