resource "google_kms_key_ring" "storage" {
  count    = var.kms_key_id == "" ? 1 : 0
  name     = "${local.prefix}-storage"
  location = var.region
}

resource "google_kms_crypto_key" "storage" {
  count           = var.kms_key_id == "" ? 1 : 0
  name            = "${local.prefix}-storage"
  key_ring        = google_kms_key_ring.storage[0].id
  rotation_period = "7776000s"

  lifecycle {
    prevent_destroy = true
  }
}

data "google_storage_project_service_account" "gcs" {
}

resource "google_kms_crypto_key_iam_member" "gcs" {
  crypto_key_id = local.kms_key_id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# Cloud Storage serves its JSON and XML APIs over HTTPS only, so TLS needs no bucket policy.
resource "google_storage_bucket" "data" {
  name                        = "${local.prefix}-data"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = local.kms_key_id
  }

  lifecycle_rule {
    condition {
      age = 365
    }

    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 5
      with_state         = "ARCHIVED"
    }

    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs]
}

# Cloud Storage serves its JSON and XML APIs over HTTPS only, so TLS needs no bucket policy.
resource "google_storage_bucket" "artifacts" {
  name                        = "${local.prefix}-artifacts"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = local.kms_key_id
  }

  lifecycle_rule {
    condition {
      age            = 730
      matches_prefix = ["models/"]
    }

    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age            = 90
      matches_prefix = ["logs/"]
    }

    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 5
      with_state         = "ARCHIVED"
    }

    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs]
}
