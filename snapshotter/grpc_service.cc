#include "snapshotter/grpc_service.h"

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

template <typename Fn>
grpc::Status SnapshotsService::Handle(const char* method, const std::string& key, Fn&& fn) {
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
  return Handle("Prepare", req->key(), [&] {
    ToProto(sn_.Prepare(req->key(), req->parent(), ToLabels(req->labels())),
            resp->mutable_mounts());
  });
}

grpc::Status SnapshotsService::View(grpc::ServerContext*, const pb::ViewSnapshotRequest* req,
                                    pb::ViewSnapshotResponse* resp) {
  return Handle("View", req->key(), [&] {
    ToProto(sn_.View(req->key(), req->parent(), ToLabels(req->labels())), resp->mutable_mounts());
  });
}

grpc::Status SnapshotsService::Mounts(grpc::ServerContext*, const pb::MountsRequest* req,
                                      pb::MountsResponse* resp) {
  return Handle("Mounts", req->key(),
                [&] { ToProto(sn_.Mounts(req->key()), resp->mutable_mounts()); });
}

grpc::Status SnapshotsService::Commit(grpc::ServerContext*, const pb::CommitSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return Handle("Commit", req->key(),
                [&] { sn_.Commit(req->name(), req->key(), ToLabels(req->labels())); });
}

grpc::Status SnapshotsService::Remove(grpc::ServerContext*, const pb::RemoveSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return Handle("Remove", req->key(), [&] { sn_.Remove(req->key()); });
}

grpc::Status SnapshotsService::Stat(grpc::ServerContext*, const pb::StatSnapshotRequest* req,
                                    pb::StatSnapshotResponse* resp) {
  return Handle("Stat", req->key(), [&] { ToProto(sn_.Stat(req->key()), resp->mutable_info()); });
}

grpc::Status SnapshotsService::Update(grpc::ServerContext*, const pb::UpdateSnapshotRequest* req,
                                      pb::UpdateSnapshotResponse* resp) {
  return Handle("Update", req->info().name(), [&] {
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
  return Handle("List", filters, [&] {
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
  return Handle("Usage", req->key(), [&] {
    auto u = sn_.GetUsage(req->key());
    resp->set_size(u.size);
    resp->set_inodes(u.inodes);
  });
}

grpc::Status SnapshotsService::Cleanup(grpc::ServerContext*, const pb::CleanupRequest*,
                                       google::protobuf::Empty*) {
  return Handle("Cleanup", "", [&] { sn_.Cleanup(); });
}

}  // namespace lazysnap::snapshotter
