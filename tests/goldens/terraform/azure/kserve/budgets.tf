resource "azurerm_consumption_budget_resource_group" "total" {
  name              = "${local.prefix}-total"
  resource_group_id = azurerm_resource_group.main.id
  amount            = 1000
  time_grain        = "Monthly"

  time_period {
    start_date = var.budget_start_date
  }

  filter {
    tag {
      name   = "mlc-model"
      values = ["credit-risk"]
    }
  }

  notification {
    enabled        = true
    threshold      = 50
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 80
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 100
    operator       = "GreaterThan"
    threshold_type = "Forecasted"
    contact_emails = var.budget_alert_emails
  }
}

resource "azurerm_consumption_budget_resource_group" "serving" {
  name              = "${local.prefix}-serving"
  resource_group_id = azurerm_resource_group.main.id
  amount            = 600
  time_grain        = "Monthly"

  time_period {
    start_date = var.budget_start_date
  }

  filter {
    tag {
      name   = "mlc-workload"
      values = ["credit-risk-serving"]
    }
  }

  notification {
    enabled        = true
    threshold      = 50
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 80
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 100
    operator       = "GreaterThan"
    threshold_type = "Forecasted"
    contact_emails = var.budget_alert_emails
  }
}

resource "azurerm_consumption_budget_resource_group" "training" {
  name              = "${local.prefix}-training"
  resource_group_id = azurerm_resource_group.main.id
  amount            = 50
  time_grain        = "Monthly"

  time_period {
    start_date = var.budget_start_date
  }

  filter {
    tag {
      name   = "mlc-workload"
      values = ["credit-risk-training"]
    }
  }

  notification {
    enabled        = true
    threshold      = 50
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 80
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 100
    operator       = "GreaterThan"
    threshold_type = "Forecasted"
    contact_emails = var.budget_alert_emails
  }
}

resource "azurerm_consumption_budget_resource_group" "tuning" {
  name              = "${local.prefix}-tuning"
  resource_group_id = azurerm_resource_group.main.id
  amount            = 100
  time_grain        = "Monthly"

  time_period {
    start_date = var.budget_start_date
  }

  filter {
    tag {
      name   = "mlc-workload"
      values = ["credit-risk-tuning"]
    }
  }

  notification {
    enabled        = true
    threshold      = 50
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 80
    operator       = "GreaterThan"
    threshold_type = "Actual"
    contact_emails = var.budget_alert_emails
  }

  notification {
    enabled        = true
    threshold      = 100
    operator       = "GreaterThan"
    threshold_type = "Forecasted"
    contact_emails = var.budget_alert_emails
  }
}
