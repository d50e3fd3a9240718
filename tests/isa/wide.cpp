#include "loss.hpp"

double wide_loss() XLOSS_TEST_ISA_LOSS_BODY
