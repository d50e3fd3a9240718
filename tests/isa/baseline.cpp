#include "loss.hpp"

double baseline_loss() XLOSS_TEST_ISA_LOSS_BODY
