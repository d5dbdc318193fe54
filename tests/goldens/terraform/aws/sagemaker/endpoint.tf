# SageMaker endpoint: strategy 'canary' expressed as production-variant weights.
resource "aws_sagemaker_model" "stable" {
  name               = "${local.prefix}-stable"
  execution_role_arn = aws_iam_role.serving.arn

  primary_container {
    image          = var.serving_image
    model_data_url = "s3://${aws_s3_bucket.artifacts.bucket}/models/${var.name}/champion/model.tar.gz"
  }
}

resource "aws_sagemaker_model" "canary" {
  name               = "${local.prefix}-canary"
  execution_role_arn = aws_iam_role.serving.arn

  primary_container {
    image          = var.serving_image
    model_data_url = "s3://${aws_s3_bucket.artifacts.bucket}/models/${var.name}/challenger/model.tar.gz"
  }
}

resource "aws_sagemaker_endpoint_configuration" "main" {
  name_prefix = "${local.prefix}-"
  kms_key_arn = local.kms_key_arn

  production_variants {
    variant_name           = "stable"
    model_name             = aws_sagemaker_model.stable.name
    initial_instance_count = 1
    instance_type          = "ml.m5.large"
    initial_variant_weight = 90
  }

  production_variants {
    variant_name           = "canary"
    model_name             = aws_sagemaker_model.canary.name
    initial_instance_count = 1
    instance_type          = "ml.m5.large"
    initial_variant_weight = 10
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_sagemaker_endpoint" "main" {
  name                 = local.prefix
  endpoint_config_name = aws_sagemaker_endpoint_configuration.main.name

  deployment_config {
    blue_green_update_policy {
      termination_wait_in_seconds = 600

      traffic_routing_configuration {
        type                     = "CANARY"
        wait_interval_in_seconds = 600

        canary_size {
          type  = "CAPACITY_PERCENT"
          value = 10
        }
      }
    }
  }
}

resource "aws_appautoscaling_target" "stable" {
  service_namespace  = "sagemaker"
  resource_id        = "endpoint/${aws_sagemaker_endpoint.main.name}/variant/stable"
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  min_capacity       = 1
  max_capacity       = 2
}

resource "aws_appautoscaling_target" "canary" {
  service_namespace  = "sagemaker"
  resource_id        = "endpoint/${aws_sagemaker_endpoint.main.name}/variant/canary"
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  min_capacity       = 1
  max_capacity       = 2
}
