resource "aws_iam_role" "pipeline" {
  name        = "${local.prefix}-pipeline"
  description = "mlc pipeline workload of ${var.name} (least privilege)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "KubernetesServiceAccount"
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "${var.oidc_provider}:sub" = "system:serviceaccount:${var.k8s_namespace}:credit-risk-pipeline"
            "${var.oidc_provider}:aud" = "sts.amazonaws.com"
          }
        }
      },
    ]
  })
}

resource "aws_iam_role_policy" "pipeline" {
  name = "${local.prefix}-pipeline"
  role = aws_iam_role.pipeline.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListBuckets"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.data.arn, aws_s3_bucket.artifacts.arn]
      },
      {
        Sid      = "ReadWriteObjects"
        Effect   = "Allow"
        Action   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
        Resource = ["${aws_s3_bucket.data.arn}/*", "${aws_s3_bucket.artifacts.arn}/*"]
      },
      {
        Sid      = "UseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        Resource = local.kms_key_arn
      },
    ]
  })
}

resource "aws_iam_role" "training" {
  name        = "${local.prefix}-training"
  description = "mlc training workload of ${var.name} (least privilege)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "KubernetesServiceAccount"
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "${var.oidc_provider}:sub" = "system:serviceaccount:${var.k8s_namespace}:credit-risk-training"
            "${var.oidc_provider}:aud" = "sts.amazonaws.com"
          }
        }
      },
      {
        Sid       = "SageMaker"
        Effect    = "Allow"
        Principal = { Service = "sagemaker.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
    ]
  })
}

resource "aws_iam_role_policy" "training" {
  name = "${local.prefix}-training"
  role = aws_iam_role.training.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListBuckets"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.data.arn, aws_s3_bucket.artifacts.arn]
      },
      {
        Sid      = "ReadData"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${aws_s3_bucket.data.arn}/*"
      },
      {
        Sid      = "WriteArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/*"
      },
      {
        Sid      = "UseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        Resource = local.kms_key_arn
      },
    ]
  })
}

resource "aws_iam_role" "serving" {
  name        = "${local.prefix}-serving"
  description = "mlc serving workload of ${var.name} (least privilege)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "KubernetesServiceAccount"
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "${var.oidc_provider}:sub" = "system:serviceaccount:${var.k8s_namespace}:credit-risk-serving"
            "${var.oidc_provider}:aud" = "sts.amazonaws.com"
          }
        }
      },
      {
        Sid       = "SageMaker"
        Effect    = "Allow"
        Principal = { Service = "sagemaker.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
    ]
  })
}

resource "aws_iam_role_policy" "serving" {
  name = "${local.prefix}-serving"
  role = aws_iam_role.serving.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListArtifacts"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = aws_s3_bucket.artifacts.arn
      },
      {
        Sid      = "ReadModels"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/models/*"
      },
      {
        Sid      = "UseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey"]
        Resource = local.kms_key_arn
      },
    ]
  })
}

resource "aws_iam_role" "monitoring" {
  name        = "${local.prefix}-monitoring"
  description = "mlc monitoring workload of ${var.name} (least privilege)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "KubernetesServiceAccount"
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "${var.oidc_provider}:sub" = "system:serviceaccount:${var.k8s_namespace}:credit-risk-monitoring"
            "${var.oidc_provider}:aud" = "sts.amazonaws.com"
          }
        }
      },
    ]
  })
}

resource "aws_iam_role_policy" "monitoring" {
  name = "${local.prefix}-monitoring"
  role = aws_iam_role.monitoring.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListBuckets"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.data.arn, aws_s3_bucket.artifacts.arn]
      },
      {
        Sid      = "ReadObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${aws_s3_bucket.data.arn}/*", "${aws_s3_bucket.artifacts.arn}/*"]
      },
      {
        Sid      = "WriteReports"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/monitoring/*"
      },
      {
        Sid      = "PublishMetrics"
        Effect   = "Allow"
        Action   = ["cloudwatch:PutMetricData"]
        Resource = "*"
        Condition = {
          StringEquals = {
            "cloudwatch:namespace" = "mlc/credit-risk"
          }
        }
      },
      {
        Sid      = "UseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        Resource = local.kms_key_arn
      },
    ]
  })
}

resource "aws_iam_policy" "access_data_scientist" {
  name        = "${local.prefix}-access-data-scientist"
  description = "mlc access role 'data-scientist': read_data, train, view_metrics"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadDataListData"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = aws_s3_bucket.data.arn
      },
      {
        Sid      = "ReadDataReadData"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${aws_s3_bucket.data.arn}/*"
      },
      {
        Sid      = "ReadDataUseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey"]
        Resource = local.kms_key_arn
      },
      {
        Sid      = "TrainListArtifacts"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = aws_s3_bucket.artifacts.arn
      },
      {
        Sid      = "TrainWriteArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/*"
      },
      {
        Sid      = "TrainPassTrainingRole"
        Effect   = "Allow"
        Action   = ["iam:PassRole"]
        Resource = aws_iam_role.training.arn
      },
      {
        Sid      = "TrainUseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        Resource = local.kms_key_arn
      },
      {
        Sid      = "ViewMetricsReadMetrics"
        Effect   = "Allow"
        Action   = ["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics"]
        Resource = "*"
      },
      {
        Sid      = "ViewMetricsReadReports"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/monitoring/*"
      },
    ]
  })
}

resource "aws_iam_group_policy_attachment" "data_scientist_group_risk_ds" {
  group      = "risk-ds"
  policy_arn = aws_iam_policy.access_data_scientist.arn
}

resource "aws_iam_policy" "access_release_manager" {
  name        = "${local.prefix}-access-release-manager"
  description = "mlc access role 'release-manager': approve, deploy"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ApproveReadModels"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/models/*"
      },
      {
        Sid      = "ApproveRecordApprovals"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/approvals/*"
      },
      {
        Sid      = "ApproveUseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
        Resource = local.kms_key_arn
      },
      {
        Sid      = "DeployReadModels"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "${aws_s3_bucket.artifacts.arn}/models/*"
      },
      {
        Sid      = "DeployPassServingRole"
        Effect   = "Allow"
        Action   = ["iam:PassRole"]
        Resource = aws_iam_role.serving.arn
      },
      {
        Sid      = "DeployUpdateEndpoint"
        Effect   = "Allow"
        Action   = ["sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"]
        Resource = [aws_sagemaker_endpoint.main.arn, "arn:aws:sagemaker:${var.region}:*:endpoint-config/${local.prefix}-*"]
      },
      {
        Sid      = "DeployUseStorageKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:DescribeKey"]
        Resource = local.kms_key_arn
      },
    ]
  })
}

resource "aws_iam_group_policy_attachment" "release_manager_group_risk_release" {
  group      = "risk-release"
  policy_arn = aws_iam_policy.access_release_manager.arn
}
