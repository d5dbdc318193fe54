data "google_project" "current" {
  project_id = var.project_id
}

resource "google_billing_budget" "total" {
  billing_account = var.billing_account
  display_name    = "${local.prefix}-total"

  budget_filter {
    projects = ["projects/${data.google_project.current.number}"]
    labels = {
      "mlc-model" = "credit-risk"
    }
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = "1000"
    }
  }

  threshold_rules {
    threshold_percent = 0.5
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 0.8
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  all_updates_rule {
    monitoring_notification_channels = var.budget_notification_channels
    disable_default_iam_recipients   = false
  }
}

resource "google_billing_budget" "serving" {
  billing_account = var.billing_account
  display_name    = "${local.prefix}-serving"

  budget_filter {
    projects = ["projects/${data.google_project.current.number}"]
    labels = {
      "mlc-workload" = "credit-risk-serving"
    }
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = "600"
    }
  }

  threshold_rules {
    threshold_percent = 0.5
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 0.8
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  all_updates_rule {
    monitoring_notification_channels = var.budget_notification_channels
    disable_default_iam_recipients   = false
  }
}

resource "google_billing_budget" "training" {
  billing_account = var.billing_account
  display_name    = "${local.prefix}-training"

  budget_filter {
    projects = ["projects/${data.google_project.current.number}"]
    labels = {
      "mlc-workload" = "credit-risk-training"
    }
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = "50"
    }
  }

  threshold_rules {
    threshold_percent = 0.5
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 0.8
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  all_updates_rule {
    monitoring_notification_channels = var.budget_notification_channels
    disable_default_iam_recipients   = false
  }
}

resource "google_billing_budget" "tuning" {
  billing_account = var.billing_account
  display_name    = "${local.prefix}-tuning"

  budget_filter {
    projects = ["projects/${data.google_project.current.number}"]
    labels = {
      "mlc-workload" = "credit-risk-tuning"
    }
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = "100"
    }
  }

  threshold_rules {
    threshold_percent = 0.5
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 0.8
    spend_basis       = "CURRENT_SPEND"
  }

  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  all_updates_rule {
    monitoring_notification_channels = var.budget_notification_channels
    disable_default_iam_recipients   = false
  }
}
