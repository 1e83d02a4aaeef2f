"""Matter recognition (jieba + scikit-learn) and the routing decision through the responsibility list."""
