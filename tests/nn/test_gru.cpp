// GRU (nn/gru.hpp): forward against torch.nn.GRU, backward through time against central
// differences (parameters, inputs, h_0) in double, float against double, shapes and errors.
#include <catch2/catch.hpp>

#include <cmath>

#include "nn/gradcheck.hpp"
#include "persist/core/error.hpp"
#include "persist/nn/gru.hpp"

using namespace persist;
using persist::nn::GRU;
using persist::nn::GradMode;
using nntest::kFdTol;
using nntest::numgrad;
using nntest::random_mat;
using nntest::rel_err;

namespace {

// torch.nn.GRU(3, 4) in double, torch.manual_seed(0), x ~ U(-1, 1) of shape (T = 3, B = 2, I = 3),
// h0 ~ U(-1, 1) (tests/nn/reference/make_gru_reference.py; PyTorch 1.13); flattened in PERSIST's
// layout (W_i, W_h column-major, b_i, b_h; x and the output time-major, column per sample).
constexpr double kTorchGruParams[] = {
        -0.0037434101104736328, -0.36796951293945312, -0.0099065899848937988,
        0.13230627775192261, -0.47767424583435059, 0.018521785736083984,
        -0.33897054195404053, 0.41519397497177124, -0.080591678619384766,
        -0.46383517980575562, -0.19489997625350952, -0.23016643524169922,
        0.26822179555892944, -0.19257718324661255, 0.39644473791122437,
        -0.15110653638839722, -0.33114105463027954, 0.19766759872436523,
        -0.21773141622543335, -0.10290008783340454, 0.052907049655914307,
        -0.31476897001266479, 0.43200039863586426, -0.34932023286819458,
        -0.41152256727218628, 0.13407868146896362, -0.044372022151947021,
        -0.098282694816589355, -0.20611155033111572, 0.30001139640808105,
        0.18160855770111084, 0.37415587902069092, 0.45273810625076294,
        -0.12658262252807617, -0.32408982515335083, -0.46828049421310425,
        -0.29187023639678955, 0.026295781135559082, -0.36128312349319458,
        -0.22174751758575439, 0.19844108819961548, 0.093172013759613037,
        0.22623652219772339, 0.2744860053062439, 0.31018829345703125,
        0.19650495052337646, 0.099507272243499756, -0.46597707271575928,
        0.42979902029037476, -0.25634175539016724, -0.25776499509811401,
        -0.01804119348526001, 0.067546427249908447, -0.38765275478363037,
        0.20108020305633545, -0.063108682632446289, 0.48009705543518066,
        0.41427469253540039, -0.43479132652282715, 0.44424623250961304,
        0.22310918569564819, 0.084592342376708984, 0.31546896696090698,
        0.31978034973144531, 0.33524316549301147, -0.3465430736541748,
        -0.2961762547492981, 0.019090771675109863, -0.3853117823600769,
        0.4351036548614502, 0.045996248722076416, 0.38017988204956055,
        0.24233627319335938, -0.46684736013412476, 0.29316061735153198,
        0.49706655740737915, -0.29440116882324219, -0.25829178094863892,
        0.15105354785919189, 0.11585235595703125, -0.18323487043380737,
        0.44117838144302368, -0.31280267238616943, -0.49876397848129272,
        0.0935860276222229, -0.084230005741119385, -0.082280576229095459,
        -0.2288784384727478, 0.19227808713912964, -0.29615175724029541,
        0.18329566717147827, 0.25285404920578003, 0.35793578624725342,
        0.18695557117462158, -0.49486762285232544, -0.32434844970703125,
        0.24965751171112061, 0.10465067625045776, -0.3900420069694519,
        -0.28790974617004395, 0.47037464380264282, 0.33690893650054932,
        -0.21801257133483887, -0.1258423924446106, -0.47629904747009277,
        -0.0089870691299438477, -0.37652945518493652, -0.38567835092544556,
};
constexpr double kTorchGruX[] = {
        0.55920375352752405, -0.27624130697291793, 0.13168771920235844,
        0.48239938198908616, -0.99107410936593521, 0.16720926619539833,
        0.13942655373346091, -0.90342934155242705, -0.67399090080094837,
        0.99736192545459912, 0.20133395154099598, -0.70172055957139201,
        -0.21172617571674168, 0.72680723461732222, -0.77766163476979155,
        0.61905190653324027, 0.57797038859698158, 0.59530878984868218,
};
constexpr double kTorchGruH0[] = {
        -0.18657202175646503, 0.44724221340104475, -0.97637079240067259,
        -0.48681598500163892, -0.62269308129622414, -0.6748711019091902,
        -0.0097432318749082203, -0.69128161558038115,
};
constexpr double kTorchGruOut[] = {
        0.071737050787271162, 0.15787525646026623, -0.85134095743294436,
        -0.47028119660286771, -0.43377859909991745, -0.47048860843459062,
        -0.45837011002013578, -0.47400150324768131, 0.054852753769740456,
        0.18580798949875832, -0.75936157748166877, -0.15979067397968569,
        -0.39702945999483424, -0.48833656479245652, -0.41245117896385092,
        -0.43384641399771107, 0.045087357469937459, 0.10525159287084505,
        -0.40371899922878546, -0.24731573137228627, -0.033190260377930325,
        -0.52442823581443965, -0.48539169172618074, -0.57351020464243729,
};

}  // namespace

TEST_CASE("GRU: forward matches torch.nn.GRU", "[nn][gru]") {
    GRU<double> g(3, 4);
    REQUIRE(g.param_count() == 3 * 4 * 3 + 3 * 4 * 4 + 6 * 4);
    REQUIRE(std::size(kTorchGruParams) == static_cast<std::size_t>(g.param_count()));
    g.params() = Eigen::Map<const Vec<double>>(kTorchGruParams, g.param_count());
    const Mat<double> x = Eigen::Map<const Mat<double>>(kTorchGruX, 3, 6);
    const Mat<double> h0 = Eigen::Map<const Mat<double>>(kTorchGruH0, 4, 2);
    const Mat<double> want = Eigen::Map<const Mat<double>>(kTorchGruOut, 4, 6);
    auto ws = g.make_workspace();
    const Mat<double> out = g.forward(x, h0, 3, ws);
    CHECK((out - want).cwiseAbs().maxCoeff() < 1e-14);
    // Step by step from the carried state gives the same sequence.
    Mat<double> h = h0;
    for (Index t = 0; t < 3; ++t) {
        const Mat<double> xt = x.middleCols(2 * t, 2);
        h = g.forward(xt, h, 1, ws);
        CHECK((h - want.middleCols(2 * t, 2)).cwiseAbs().maxCoeff() < 1e-14);
    }
}

TEST_CASE("GRU: backward through time matches central differences", "[nn][gru][gradcheck]") {
    const Index I = 3, H = 5, S = 4, B = 3;
    Rng rng(11);
    GRU<double> g(I, H);
    g.init(rng);
    g.params() *= 2.0;  // larger weights: the gates leave their linear range
    Mat<double> x = random_mat(I, S * B, rng), h0 = random_mat(H, B, rng, 0.8);
    const Mat<double> R = random_mat(H, S * B, rng);  // loss = <R, h_1..h_T>
    auto ws = g.make_workspace();
    const auto loss = [&] { return nntest::dot(R, g.forward(x, h0, S, ws)); };
    (void)loss();
    Mat<double> dx, dh0;
    g.backward(ws, R, &dx, &dh0, GradMode::overwrite);
    const Vec<double> dp = g.grads();
    Vec<double>& p = g.params();
    CHECK(rel_err(dp, numgrad(p, loss)) < kFdTol);
    CHECK(rel_err(dx, numgrad(x, loss)) < kFdTol);
    CHECK(rel_err(dh0, numgrad(h0, loss)) < kFdTol);
    // accumulate adds, overwrite writes
    (void)loss();
    g.backward(ws, R, nullptr, nullptr, GradMode::accumulate);
    CHECK(rel_err(g.grads(), 2.0 * dp) < 1e-14);
    // a gradient on the last step only still reaches the first step's input (through time)
    Mat<double> last = Mat<double>::Zero(H, S * B);
    last.rightCols(B) = R.rightCols(B);
    (void)loss();
    g.backward(ws, last, &dx, nullptr, GradMode::overwrite);
    CHECK(dx.leftCols(B).norm() > 0);
}

TEST_CASE("GRU: float agrees with double; shapes and errors", "[nn][gru]") {
    const Index I = 4, H = 6, S = 5, B = 2;
    Rng rng(5);
    GRU<double> gd(I, H);
    gd.init(rng);
    GRU<float> gf(I, H);
    gf.params() = gd.params().cast<float>();
    const Mat<double> x = random_mat(I, S * B, rng), h0 = random_mat(H, B, rng), R = random_mat(H, S * B, rng);
    auto wd = gd.make_workspace();
    auto wf = gf.make_workspace();
    const Mat<double> yd = gd.forward(x, h0, S, wd);
    const Mat<float> yf = gf.forward(x.cast<float>(), h0.cast<float>(), S, wf);
    CHECK(rel_err(yf, yd) < nntest::kFloatTol);
    gd.backward(wd, R, nullptr, nullptr, GradMode::overwrite);
    gf.backward(wf, R.cast<float>(), nullptr, nullptr, GradMode::overwrite);
    CHECK(rel_err(gf.grads(), gd.grads()) < nntest::kFloatTol);

    CHECK_THROWS_AS(GRU<float>(0, 3), ConfigError);
    auto w2 = gd.make_workspace();
    CHECK_THROWS_AS(gd.backward(w2, R), Error);  // no forward yet
    CHECK_THROWS_AS(gd.forward(Mat<double>(I + 1, S * B), h0, S, wd), ShapeError);
    CHECK_THROWS_AS(gd.forward(Mat<double>(I, S * B + 1), h0, S, wd), ShapeError);
    CHECK_THROWS_AS(gd.forward(x, Mat<double>(H, B + 1), S, wd), ShapeError);
    CHECK_THROWS_AS(gd.forward(x, h0, 0, wd), ConfigError);
    (void)gd.forward(x, h0, S, wd);
    CHECK_THROWS_AS(gd.backward(wd, Mat<double>(H, S * B - 1)), ShapeError);
}
