# Vertex AI endpoint: strategy 'canary' expressed as its traffic split (percent per
# deployed model; models are deployed by the pipeline and their ids passed in).
locals {
  endpoint_traffic = {
    stable = 90
    canary = 10
  }
}

resource "google_vertex_ai_endpoint" "main" {
  name          = local.prefix
  display_name  = local.prefix
  location      = var.region
  region        = var.region
  traffic_split = jsonencode({ for variant, id in var.deployed_model_ids : id => local.endpoint_traffic[variant] })

  encryption_spec {
    kms_key_name = local.kms_key_id
  }
}
