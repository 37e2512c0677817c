"""The Ray Serve HTTP ingress: routes, request/response models, problem+json errors."""
