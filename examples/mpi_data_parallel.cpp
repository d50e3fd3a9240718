// Data-parallel training across processes with MPI: the batch is sharded over
// the ranks, each computes its partial loss and weight gradient with xloss, and
// MPI_Allreduce adds them up. kl_div_options::divisor gives `batchmean` the
// global batch size, so the sums equal the single-process loss and gradient.
//   mpirun -np 2 ./mpi_data_parallel

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iostream>

#include <mpi.h>

#include <xloss/compat.hpp>
#include XLOSS_XTENSOR_HEADER(containers, xarray.hpp)
#include XLOSS_XTENSOR_HEADER(generators, xrandom.hpp)
#include XLOSS_XTENSOR_HEADER(views, xview.hpp)

#include <xloss/xloss.hpp>

namespace
{
    xt::xarray<double> matmul(const xt::xarray<double>& a, const xt::xarray<double>& b)
    {
        const std::size_t n = a.shape(0), k = a.shape(1), m = b.shape(1);
        xt::xarray<double> c = xt::zeros<double>({n, m});
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < k; ++j)
                for (std::size_t l = 0; l < m; ++l)
                    c(i, l) += a(i, j) * b(j, l);
        return c;
    }

    /// Loss and weight gradient of softmax regression on (x, labels), with the given options.
    double loss_and_grad(const xt::xarray<double>& x, const xt::xarray<double>& labels, const xt::xarray<double>& w,
                         const xloss::kl_div_options& options, xt::xarray<double>& grad_w)
    {
        const auto r = xloss::kl_div_forward_backward(matmul(x, w), labels, options);
        grad_w = matmul(xt::transpose(x), r.grad_input);
        return r.loss();
    }
}

int main(int argc, char** argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, ranks = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);

    // Every rank makes the same global data (same seed); 13 samples do not split evenly.
    constexpr std::size_t batch = 13, features = 4, classes = 5;
    xt::random::seed(3);
    const xt::xarray<double> x = xt::random::randn<double>({batch, features});
    const xt::xarray<double> z = xt::random::randn<double>({batch, classes});
    const xt::xarray<double> sums = xt::sum(xt::exp(z), {1}, xt::keep_dims); // stored before it broadcasts
    const xt::xarray<double> labels = xt::exp(z) / sums;
    const xt::xarray<double> w = xt::random::randn<double>({features, classes});

    // This rank's shard of the batch.
    const std::size_t begin = batch * rank / ranks, end = batch * (rank + 1) / ranks;
    const xt::xarray<double> x_shard = xt::view(x, xt::range(begin, end));
    const xt::xarray<double> labels_shard = xt::view(labels, xt::range(begin, end));

    // batchmean over the global batch: each shard divides its sum by the global batch size.
    const auto options =
        xloss::kl_div_options(xloss::reduction::batchmean).input_logits(true).divisor(static_cast<double>(batch));
    xt::xarray<double> grad_w;
    double loss = loss_and_grad(x_shard, labels_shard, w, options, grad_w);
    MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, grad_w.data(), static_cast<int>(grad_w.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);

    int status = 0;
    if (rank == 0)
    {
        // The same step in one process, on the whole batch.
        xt::xarray<double> single_grad;
        const double single = loss_and_grad(
            x, labels, w, xloss::kl_div_options(xloss::reduction::batchmean).input_logits(true), single_grad);
        const double loss_diff = std::abs(loss - single);
        const double grad_diff = xt::amax(xt::abs(grad_w - single_grad))();
        std::cout << ranks << " ranks: loss " << loss << " (single process " << single << ", difference " << loss_diff
                  << "), largest gradient difference " << grad_diff << "\n";
        status = loss_diff <= 1e-12 * std::abs(single) && grad_diff <= 1e-12 ? 0 : 1;
        std::cout << (status == 0 ? "sharded loss and gradient equal the single-process ones\n"
                                  : "MISMATCH between sharded and single-process results\n");
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return status;
}
