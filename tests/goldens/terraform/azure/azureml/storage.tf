resource "azurerm_user_assigned_identity" "storage" {
  name                = "${local.prefix}-storage"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
}

resource "azurerm_key_vault" "storage" {
  name                          = substr("${local.storage_account}kv", 0, 24)
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "premium"
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  enable_rbac_authorization     = true
  public_network_access_enabled = false
}

resource "azurerm_role_assignment" "storage_key_user" {
  scope                = azurerm_key_vault.storage.id
  role_definition_name = "Key Vault Crypto Service Encryption User"
  principal_id         = azurerm_user_assigned_identity.storage.principal_id
}

resource "azurerm_key_vault_key" "storage" {
  name         = "${local.prefix}-storage"
  key_vault_id = azurerm_key_vault.storage.id
  key_type     = "RSA-HSM"
  key_size     = 3072
  key_opts     = ["unwrapKey", "wrapKey"]

  rotation_policy {
    expire_after = "P2Y"

    automatic {
      time_before_expiry = "P30D"
    }
  }
}

resource "azurerm_storage_account" "main" {
  name                              = local.storage_account
  location                          = azurerm_resource_group.main.location
  resource_group_name               = azurerm_resource_group.main.name
  account_tier                      = "Standard"
  account_replication_type          = "ZRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  infrastructure_encryption_enabled = true

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.storage.id]
  }

  customer_managed_key {
    key_vault_key_id          = azurerm_key_vault_key.storage.versionless_id
    user_assigned_identity_id = azurerm_user_assigned_identity.storage.id
  }

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = 7
    }
  }

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
    ip_rules       = var.allowed_ip_ranges
  }

  depends_on = [azurerm_role_assignment.storage_key_user]
}

resource "azurerm_storage_container" "data" {
  name                  = "data"
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "artifacts" {
  name                  = "artifacts"
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"
}

resource "azurerm_storage_management_policy" "main" {
  storage_account_id = azurerm_storage_account.main.id

  rule {
    name    = "data"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["data/"]
    }

    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = 365
      }

      version {
        delete_after_days_since_creation = 30
      }
    }
  }

  rule {
    name    = "models"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["artifacts/models/"]
    }

    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = 730
      }

      version {
        delete_after_days_since_creation = 30
      }
    }
  }

  rule {
    name    = "logs"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["artifacts/logs/"]
    }

    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = 90
      }

      version {
        delete_after_days_since_creation = 30
      }
    }
  }
}
