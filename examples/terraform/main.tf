# tokenops with Terraform: three long-lived tokens with a shared rotation
# policy, plus a short-lived token that exists only while Terraform runs.
#
#   export TOKENOPS_ENDPOINT=https://tokens.example.com
#   export TOKENOPS_TOKEN=tko_...        # a token-admin token: it manages product tokens of any
#                                        # scope; automation needs no owner token
#   terraform apply
#
# Run `terraform apply` on a schedule (e.g. daily): once a token's rotation
# window opens, the plan regenerates it in place (same id, new value).

terraform {
  required_version = ">= 1.11"
  required_providers {
    tokenops = {
      source = "tokenops/tokenops"
    }
  }
}

variable "tokenops_endpoint" {
  description = "URL of the tokenops backend; null reads TOKENOPS_ENDPOINT."
  type        = string
  default     = null
}

variable "monitored_sites" {
  description = "Sites the monitoring token may read."
  type        = list(string)
  default     = ["s-berlin", "s-paris"]
}

variable "accounting_rotation" {
  description = "Change this value to rotate the accounting token now."
  type        = string
  default     = "2026-Q4"
}

provider "tokenops" {
  endpoint = var.tokenops_endpoint
}

locals {
  # One rotation policy for every token: 30 days, renewed when a third of
  # the lifetime is left, the previous value keeps working for an hour.
  rotation = {
    lifetime      = "720h"
    rotate_before = "33%"
    grace_period  = "1h"
  }
}

# The CI/CD pipeline deploys everything, so it may call every product API
# ("*" never reaches token management: that stays with token-admin and owner).
resource "tokenops_api_token" "cicd" {
  name          = "ci-cd-deployer"
  description   = "Used by the deployment pipeline"
  scopes        = ["*"]
  lifetime      = local.rotation.lifetime
  rotate_before = local.rotation.rotate_before
  grace_period  = local.rotation.grace_period
  labels = {
    team    = "platform"
    purpose = "ci-cd"
  }
}

# Monitoring only reads, and only the two sites it watches.
resource "tokenops_api_token" "monitoring" {
  name          = "monitoring"
  description   = "Read-only token for the monitoring stack"
  role          = "read-only"
  resources     = [for site in var.monitored_sites : { type = "site", id = site }]
  lifetime      = local.rotation.lifetime
  rotate_before = local.rotation.rotate_before
  grace_period  = local.rotation.grace_period
  labels = {
    team = "observability"
  }
}

# Accounting reads billing and usage; rotated on demand through a trigger.
resource "tokenops_api_token" "accounting" {
  name          = "accounting-export"
  role          = "accounting"
  lifetime      = "2160h"
  rotate_before = "240h"
  rotation_triggers = {
    rotation = var.accounting_rotation
  }
  labels = {
    team = "finance"
  }
}

# A short-lived read-only token for this run only: never in plan or state,
# revoked when Terraform is done with it.
ephemeral "tokenops_api_token" "smoke_test" {
  name     = "terraform-smoke-test"
  scopes   = ["tokens:read"] # reads token metadata: a management permission, named
  lifetime = "15m"
}

# A second provider configuration acting as the ephemeral token.
provider "tokenops" {
  alias    = "smoke_test"
  endpoint = var.tokenops_endpoint
  token    = ephemeral.tokenops_api_token.smoke_test.token
}

# Smoke test: the short-lived token can read the CI/CD token's metadata.
data "tokenops_api_token" "cicd_seen_by_smoke_test" {
  provider = tokenops.smoke_test
  id       = tokenops_api_token.cicd.id
}

output "cicd_token" {
  description = "Store this in the CI system's secret store."
  value       = tokenops_api_token.cicd.token
  sensitive   = true
}

output "monitoring_token" {
  value     = tokenops_api_token.monitoring.token
  sensitive = true
}

output "accounting_token_masked" {
  value = tokenops_api_token.accounting.masked
}

output "cicd_renewal_at" {
  description = "When the next plan will start rotating the CI/CD token."
  value       = tokenops_api_token.cicd.renewal_at
}

output "smoke_test_saw_cicd_expiring_at" {
  description = "Read with the ephemeral token: proves it worked during the run."
  value       = data.tokenops_api_token.cicd_seen_by_smoke_test.expires_at
}
