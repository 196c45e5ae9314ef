"""The paper's method: one function per equation (entropy, resampling, GMM, FDA), pseudo labels."""
