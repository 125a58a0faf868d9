// containerd.services.snapshots.v1.Snapshots over gRPC: converts messages and maps
// lazysnap::Error codes to the gRPC status codes containerd's errdefs understands.
#pragma once

#include "common/error.h"
#include "common/log.h"
#include "snapshotter/proto/snapshots.grpc.pb.h"
#include "snapshotter/snapshotter.h"

namespace lazysnap::snapshotter {

namespace pb = ::containerd::services::snapshots::v1;

class SnapshotsService final : public pb::Snapshots::Service {
 public:
  SnapshotsService(Snapshotter& snapshotter, const Logger& log) : sn_(snapshotter), log_(log) {}

  grpc::Status Prepare(grpc::ServerContext*, const pb::PrepareSnapshotRequest*,
                       pb::PrepareSnapshotResponse*) override;
  grpc::Status View(grpc::ServerContext*, const pb::ViewSnapshotRequest*,
                    pb::ViewSnapshotResponse*) override;
  grpc::Status Mounts(grpc::ServerContext*, const pb::MountsRequest*, pb::MountsResponse*) override;
  grpc::Status Commit(grpc::ServerContext*, const pb::CommitSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Remove(grpc::ServerContext*, const pb::RemoveSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Stat(grpc::ServerContext*, const pb::StatSnapshotRequest*,
                    pb::StatSnapshotResponse*) override;
  grpc::Status Update(grpc::ServerContext*, const pb::UpdateSnapshotRequest*,
                      pb::UpdateSnapshotResponse*) override;
  grpc::Status List(grpc::ServerContext*, const pb::ListSnapshotsRequest*,
                    grpc::ServerWriter<pb::ListSnapshotsResponse>*) override;
  grpc::Status Usage(grpc::ServerContext*, const pb::UsageRequest*, pb::UsageResponse*) override;
  grpc::Status Cleanup(grpc::ServerContext*, const pb::CleanupRequest*,
                       google::protobuf::Empty*) override;

 private:
  template <typename Fn>
  grpc::Status Handle(const char* method, const std::string& key, Fn&& fn);

  Snapshotter& sn_;
  const Logger& log_;
};

grpc::StatusCode ToGrpcCode(ErrorCode code);

}  // namespace lazysnap::snapshotter
