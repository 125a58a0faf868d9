// containerd.services.snapshots.v1.Snapshots over gRPC: converts messages and maps
// lazysnap::Error codes to the gRPC status codes containerd's errdefs understands.
#pragma once

#include <array>
#include <atomic>
#include <chrono>

#include "common/error.h"
#include "common/log.h"
#include "snapshotter/proto/snapshots.grpc.pb.h"
#include "snapshotter/snapshotter.h"

namespace lazysnap::snapshotter {

namespace pb = ::containerd::services::snapshots::v1;

enum class Rpc {
  kPrepare,
  kView,
  kMounts,
  kCommit,
  kRemove,
  kStat,
  kUpdate,
  kList,
  kUsage,
  kCleanup
};
inline constexpr int kRpcCount = 10;
const char* RpcName(Rpc rpc);  // the snapshots.v1 method name, e.g. "Prepare"

inline constexpr int kGrpcCodeCount = 17;  // OK (0) .. UNAUTHENTICATED (16)
const char* GrpcCodeName(int code);        // e.g. "NOT_FOUND"

// Requests answered per method and status code, and the time spent on them; thread-safe.
class RequestCounters {
 public:
  void Record(Rpc rpc, grpc::StatusCode code, std::chrono::nanoseconds took);
  uint64_t Count(Rpc rpc, int code) const;
  uint64_t Count(Rpc rpc) const;  // all codes
  double Seconds(Rpc rpc) const;

 private:
  std::array<std::array<std::atomic<uint64_t>, kGrpcCodeCount>, kRpcCount> counts_{};
  std::array<std::atomic<uint64_t>, kRpcCount> nanos_{};
};

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

  const RequestCounters& requests() const { return requests_; }

 private:
  template <typename Fn>
  grpc::Status Handle(Rpc rpc, const std::string& key, Fn&& fn);
  template <typename Fn>
  grpc::Status Answer(Rpc rpc, const std::string& key, Fn&& fn);

  Snapshotter& sn_;
  const Logger& log_;
  RequestCounters requests_;
};

grpc::StatusCode ToGrpcCode(ErrorCode code);

}  // namespace lazysnap::snapshotter
