#include "snapshotter/grpc_service.h"

#include <algorithm>

#include "common/error.h"

namespace lazysnap::snapshotter {
namespace {

// List answers in batches: one message per snapshot would cost a write per row.
constexpr int kListBatch = 100;

Labels ToLabels(const google::protobuf::Map<std::string, std::string>& m) {
  return Labels(m.begin(), m.end());
}

void ToProto(const std::vector<Mount>& mounts,
             google::protobuf::RepeatedPtrField<containerd::types::Mount>* out) {
  for (const auto& m : mounts) {
    auto* pm = out->Add();
    pm->set_type(m.type);
    pm->set_source(m.source);
    pm->set_target(m.target);
    for (const auto& o : m.options) pm->add_options(o);
  }
}

void SetTimestamp(int64_t ns, google::protobuf::Timestamp* ts) {
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProto(const Info& info, pb::Info* out) {
  out->set_name(info.name);
  out->set_parent(info.parent);
  out->set_kind(static_cast<pb::Kind>(static_cast<int>(info.kind)));
  SetTimestamp(info.created_ns, out->mutable_created_at());
  SetTimestamp(info.updated_ns, out->mutable_updated_at());
  for (const auto& [k, v] : info.labels) (*out->mutable_labels())[k] = v;
}

}  // namespace

grpc::StatusCode ToGrpcCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case ErrorCode::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case ErrorCode::kAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case ErrorCode::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorCode::kUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case ErrorCode::kDataLoss:
      return grpc::StatusCode::DATA_LOSS;
    case ErrorCode::kResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ErrorCode::kInternal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::UNKNOWN;
}

const char* RpcName(Rpc rpc) {
  static constexpr const char* kNames[kRpcCount] = {"Prepare", "View",   "Mounts", "Commit",
                                                    "Remove",  "Stat",   "Update", "List",
                                                    "Usage",   "Cleanup"};
  int i = static_cast<int>(rpc);
  return i >= 0 && i < kRpcCount ? kNames[i] : "unknown";
}

const char* GrpcCodeName(int code) {
  static constexpr const char* kNames[kGrpcCodeCount] = {"OK",
                                                         "CANCELLED",
                                                         "UNKNOWN",
                                                         "INVALID_ARGUMENT",
                                                         "DEADLINE_EXCEEDED",
                                                         "NOT_FOUND",
                                                         "ALREADY_EXISTS",
                                                         "PERMISSION_DENIED",
                                                         "RESOURCE_EXHAUSTED",
                                                         "FAILED_PRECONDITION",
                                                         "ABORTED",
                                                         "OUT_OF_RANGE",
                                                         "UNIMPLEMENTED",
                                                         "INTERNAL",
                                                         "UNAVAILABLE",
                                                         "DATA_LOSS",
                                                         "UNAUTHENTICATED"};
  return code >= 0 && code < kGrpcCodeCount ? kNames[code] : "UNKNOWN";
}

void RequestCounters::Record(Rpc rpc, grpc::StatusCode code, std::chrono::nanoseconds took) {
  int c = static_cast<int>(code);
  if (c < 0 || c >= kGrpcCodeCount) c = static_cast<int>(grpc::StatusCode::UNKNOWN);
  auto& row = counts_[static_cast<size_t>(rpc)];
  row[static_cast<size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  nanos_[static_cast<size_t>(rpc)].fetch_add(
      static_cast<uint64_t>(std::max<int64_t>(took.count(), 0)), std::memory_order_relaxed);
}

uint64_t RequestCounters::Count(Rpc rpc, int code) const {
  return counts_[static_cast<size_t>(rpc)][static_cast<size_t>(code)].load(
      std::memory_order_relaxed);
}

uint64_t RequestCounters::Count(Rpc rpc) const {
  uint64_t n = 0;
  for (int c = 0; c < kGrpcCodeCount; ++c) n += Count(rpc, c);
  return n;
}

double RequestCounters::Seconds(Rpc rpc) const {
  return static_cast<double>(nanos_[static_cast<size_t>(rpc)].load(std::memory_order_relaxed)) /
         1e9;
}

template <typename Fn>
grpc::Status SnapshotsService::Handle(Rpc rpc, const std::string& key, Fn&& fn) {
  auto start = std::chrono::steady_clock::now();
  grpc::Status status = Answer(rpc, key, std::forward<Fn>(fn));
  auto took = std::chrono::steady_clock::now() - start;
  requests_.Record(rpc, status.error_code(), took);
  // Every request at debug level, with its time: where a slow pull or container start waits.
  log_.Debug("request",
             {{"method", RpcName(rpc)},
              {"key", key},
              {"code", GrpcCodeName(status.error_code())},
              {"us", std::to_string(
                         std::chrono::duration_cast<std::chrono::microseconds>(took).count())}});
  return status;
}

template <typename Fn>
grpc::Status SnapshotsService::Answer(Rpc rpc, const std::string& key, Fn&& fn) {
  const char* method = RpcName(rpc);
  try {
    fn();
    return grpc::Status::OK;
  } catch (const Error& e) {
    // ALREADY_EXISTS from Prepare is the remote-snapshot protocol's normal answer; NOT_FOUND from
    // Stat is how containerd probes. Neither deserves a warning.
    bool expected = e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kAlreadyExists;
    log_.Log(
        expected ? LogLevel::kDebug : LogLevel::kWarn, "request failed",
        {{"method", method}, {"key", key}, {"code", ErrorCodeName(e.code())}, {"error", e.what()}});
    return grpc::Status(ToGrpcCode(e.code()), e.what());
  } catch (const std::exception& e) {
    log_.Error("request failed", {{"method", method}, {"key", key}, {"error", e.what()}});
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(method) + ": " + e.what());
  }
}

grpc::Status SnapshotsService::Prepare(grpc::ServerContext*, const pb::PrepareSnapshotRequest* req,
                                       pb::PrepareSnapshotResponse* resp) {
  return Handle(Rpc::kPrepare, req->key(), [&] {
    ToProto(sn_.Prepare(req->key(), req->parent(), ToLabels(req->labels())),
            resp->mutable_mounts());
  });
}

grpc::Status SnapshotsService::View(grpc::ServerContext*, const pb::ViewSnapshotRequest* req,
                                    pb::ViewSnapshotResponse* resp) {
  return Handle(Rpc::kView, req->key(), [&] {
    ToProto(sn_.View(req->key(), req->parent(), ToLabels(req->labels())), resp->mutable_mounts());
  });
}

grpc::Status SnapshotsService::Mounts(grpc::ServerContext*, const pb::MountsRequest* req,
                                      pb::MountsResponse* resp) {
  return Handle(Rpc::kMounts, req->key(),
                [&] { ToProto(sn_.Mounts(req->key()), resp->mutable_mounts()); });
}

grpc::Status SnapshotsService::Commit(grpc::ServerContext*, const pb::CommitSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return Handle(Rpc::kCommit, req->key(),
                [&] { sn_.Commit(req->name(), req->key(), ToLabels(req->labels())); });
}

grpc::Status SnapshotsService::Remove(grpc::ServerContext*, const pb::RemoveSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return Handle(Rpc::kRemove, req->key(), [&] { sn_.Remove(req->key()); });
}

grpc::Status SnapshotsService::Stat(grpc::ServerContext*, const pb::StatSnapshotRequest* req,
                                    pb::StatSnapshotResponse* resp) {
  return Handle(Rpc::kStat, req->key(),
                [&] { ToProto(sn_.Stat(req->key()), resp->mutable_info()); });
}

grpc::Status SnapshotsService::Update(grpc::ServerContext*, const pb::UpdateSnapshotRequest* req,
                                      pb::UpdateSnapshotResponse* resp) {
  return Handle(Rpc::kUpdate, req->info().name(), [&] {
    Info info;
    info.name = req->info().name();
    info.labels = ToLabels(req->info().labels());
    std::vector<std::string> paths(req->update_mask().paths().begin(),
                                   req->update_mask().paths().end());
    ToProto(sn_.Update(info, paths), resp->mutable_info());
  });
}

grpc::Status SnapshotsService::List(grpc::ServerContext*, const pb::ListSnapshotsRequest* req,
                                    grpc::ServerWriter<pb::ListSnapshotsResponse>* writer) {
  std::string filters;
  for (const auto& f : req->filters()) filters += (filters.empty() ? "" : " | ") + f;
  return Handle(Rpc::kList, filters, [&] {
    FilterSet set = FilterSet::Parse({req->filters().begin(), req->filters().end()});
    pb::ListSnapshotsResponse batch;
    sn_.List(set, [&](const Info& info) {
      ToProto(info, batch.add_info());
      if (batch.info_size() >= kListBatch) {
        writer->Write(batch);
        batch.Clear();
      }
    });
    if (batch.info_size() > 0) writer->Write(batch);
  });
}

grpc::Status SnapshotsService::Usage(grpc::ServerContext*, const pb::UsageRequest* req,
                                     pb::UsageResponse* resp) {
  return Handle(Rpc::kUsage, req->key(), [&] {
    auto u = sn_.GetUsage(req->key());
    resp->set_size(u.size);
    resp->set_inodes(u.inodes);
  });
}

grpc::Status SnapshotsService::Cleanup(grpc::ServerContext*, const pb::CleanupRequest*,
                                       google::protobuf::Empty*) {
  return Handle(Rpc::kCleanup, "", [&] { sn_.Cleanup(); });
}

}  // namespace lazysnap::snapshotter
