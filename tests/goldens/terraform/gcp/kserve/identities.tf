resource "google_service_account" "pipeline" {
  account_id   = "${substr(var.name, 0, 18)}-pipeline"
  display_name = "mlc pipeline workload of ${var.name}"
}

resource "google_service_account_iam_member" "pipeline_workload_identity" {
  service_account_id = google_service_account.pipeline.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.k8s_namespace}/credit-risk-pipeline]"
}

resource "google_storage_bucket_iam_member" "pipeline_data_storage_objectAdmin" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_storage_bucket_iam_member" "pipeline_artifacts_storage_objectAdmin" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_service_account" "training" {
  account_id   = "${substr(var.name, 0, 18)}-training"
  display_name = "mlc training workload of ${var.name}"
}

resource "google_service_account_iam_member" "training_workload_identity" {
  service_account_id = google_service_account.training.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.k8s_namespace}/credit-risk-training]"
}

resource "google_storage_bucket_iam_member" "training_data_storage_objectViewer" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.training.email}"
}

resource "google_storage_bucket_iam_member" "training_artifacts_storage_objectAdmin" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.training.email}"
}

resource "google_service_account" "serving" {
  account_id   = "${substr(var.name, 0, 18)}-serving"
  display_name = "mlc serving workload of ${var.name}"
}

resource "google_service_account_iam_member" "serving_workload_identity" {
  service_account_id = google_service_account.serving.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.k8s_namespace}/credit-risk-serving]"
}

resource "google_storage_bucket_iam_member" "serving_artifacts_storage_objectViewer" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.serving.email}"
}

resource "google_service_account" "monitoring" {
  account_id   = "${substr(var.name, 0, 18)}-monitoring"
  display_name = "mlc monitoring workload of ${var.name}"
}

resource "google_service_account_iam_member" "monitoring_workload_identity" {
  service_account_id = google_service_account.monitoring.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.k8s_namespace}/credit-risk-monitoring]"
}

resource "google_storage_bucket_iam_member" "monitoring_data_storage_objectViewer" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.monitoring.email}"
}

resource "google_storage_bucket_iam_member" "monitoring_artifacts_storage_objectViewer" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.monitoring.email}"
}

resource "google_storage_bucket_iam_member" "monitoring_artifacts_storage_objectCreator" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.monitoring.email}"
}

resource "google_project_iam_member" "monitoring_project_monitoring_metricWriter" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${google_service_account.monitoring.email}"
}

resource "google_storage_bucket_iam_member" "access_data_scientist_group_risk_ds_artifacts_storage_objectAdmin" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "group:risk-ds"
}

resource "google_storage_bucket_iam_member" "access_data_scientist_group_risk_ds_data_storage_objectViewer" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = "group:risk-ds"
}

resource "google_project_iam_member" "access_data_scientist_group_risk_ds_project_monitoring_viewer" {
  project = var.project_id
  role    = "roles/monitoring.viewer"
  member  = "group:risk-ds"
}

resource "google_service_account_iam_member" "access_data_scientist_group_risk_ds_sa_training_iam_serviceAccountUser" {
  service_account_id = google_service_account.training.name
  role               = "roles/iam.serviceAccountUser"
  member             = "group:risk-ds"
}

resource "google_storage_bucket_iam_member" "access_release_manager_group_risk_release_artifacts_storage_objectCreator" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = "group:risk-release"
}

resource "google_storage_bucket_iam_member" "access_release_manager_group_risk_release_artifacts_storage_objectViewer" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "group:risk-release"
}

resource "google_service_account_iam_member" "access_release_manager_group_risk_release_sa_serving_iam_serviceAccountUser" {
  service_account_id = google_service_account.serving.name
  role               = "roles/iam.serviceAccountUser"
  member             = "group:risk-release"
}
