"""Image tier: builds the container images and runs them with buildah."""
