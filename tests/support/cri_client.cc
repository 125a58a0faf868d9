#include "tests/support/cri_client.h"

#include <grpcpp/grpcpp.h>

#include "common/error.h"
#include "tests/support/cri/runtime_v1.grpc.pb.h"

namespace lazysnap::testing {

struct CriImageClient::Impl {
  std::unique_ptr<runtime::v1::ImageService::Stub> stub;
};

CriImageClient::CriImageClient(const std::string& containerd_socket)
    : impl_(std::make_unique<Impl>()) {
  impl_->stub = runtime::v1::ImageService::NewStub(
      grpc::CreateChannel("unix:" + containerd_socket, grpc::InsecureChannelCredentials()));
}

CriImageClient::~CriImageClient() = default;

std::string CriImageClient::Pull(const std::string& image) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  runtime::v1::PullImageRequest req;
  req.mutable_image()->set_image(image);
  runtime::v1::PullImageResponse resp;
  auto st = impl_->stub->PullImage(&ctx, req, &resp);
  if (!st.ok()) {
    throw Error(ErrorCode::kUnavailable, "CRI PullImage " + image + ": " + st.error_message());
  }
  return resp.image_ref();
}

void CriImageClient::Remove(const std::string& image) {
  grpc::ClientContext ctx;
  runtime::v1::RemoveImageRequest req;
  req.mutable_image()->set_image(image);
  runtime::v1::RemoveImageResponse resp;
  auto st = impl_->stub->RemoveImage(&ctx, req, &resp);
  if (!st.ok())
    throw Error(ErrorCode::kUnavailable, "CRI RemoveImage " + image + ": " + st.error_message());
}

}  // namespace lazysnap::testing
