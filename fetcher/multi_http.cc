#include "fetcher/multi_http.h"

#include <curl/curl.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "fetcher/curl_transfer.h"

namespace lazysnap::fetcher {

namespace {

struct Group {
  std::mutex mu;
  std::condition_variable done;
  size_t pending = 0;
};

struct Job {
  const HttpRequest* request = nullptr;
  MultiResult* result = nullptr;
  detail::CurlTransfer transfer;
  CURL* easy = nullptr;
  Group* group = nullptr;
};

}  // namespace

struct MultiHttp::Impl {
  CURLM* multi = nullptr;
  std::mutex mu;
  std::deque<Job*> queue;  // submitted, not yet handed to curl
  bool stopping = false;
  std::thread loop;

  void Complete(Job* job, CURLcode rc) {
    try {
      detail::FinishEasy(job->easy, rc, *job->request, &job->transfer);
    } catch (...) {
      job->result->error = std::current_exception();
    }
    curl_multi_remove_handle(multi, job->easy);
    curl_easy_cleanup(job->easy);
    Group* g = job->group;
    std::lock_guard lock(g->mu);
    if (--g->pending == 0) g->done.notify_all();
  }

  void Run() {
    int running = 0;
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (stopping && queue.empty() && running == 0) return;
        while (!queue.empty()) {
          Job* job = queue.front();
          queue.pop_front();
          job->easy = curl_easy_init();
          if (job->easy == nullptr) {
            job->result->error = std::make_exception_ptr(
                Error(ErrorCode::kResourceExhausted, "curl_easy_init failed"));
            std::lock_guard g(job->group->mu);
            if (--job->group->pending == 0) job->group->done.notify_all();
            continue;
          }
          detail::ConfigureEasy(job->easy, *job->request, &job->transfer);
          curl_easy_setopt(job->easy, CURLOPT_PRIVATE, job);
          curl_multi_add_handle(multi, job->easy);
        }
      }
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        char* priv = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        Job* job = reinterpret_cast<Job*>(priv);
        Complete(job, msg->data.result);
      }
      curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
  }
};

MultiHttp::MultiHttp(long max_connections_per_host) : impl_(std::make_unique<Impl>()) {
  detail::CurlGlobalInit();
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) throw Error(ErrorCode::kInternal, "curl_multi_init failed");
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections_per_host);
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections_per_host * 4);
  curl_multi_setopt(impl_->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  impl_->loop = std::thread([this] { impl_->Run(); });
}

MultiHttp::~MultiHttp() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  curl_multi_wakeup(impl_->multi);
  impl_->loop.join();
  curl_multi_cleanup(impl_->multi);
}

std::vector<MultiResult> MultiHttp::PerformAll(const std::vector<HttpRequest>& requests,
                                               const std::vector<BodySink>& sinks) {
  std::vector<MultiResult> results(requests.size());
  if (requests.empty()) return results;
  Group group;
  group.pending = requests.size();
  std::vector<std::unique_ptr<Job>> jobs;
  jobs.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    auto job = std::make_unique<Job>();
    job->request = &requests[i];
    job->result = &results[i];
    job->transfer.resp = &results[i].response;
    job->transfer.sink = sinks.empty() ? nullptr : &sinks[i];
    job->group = &group;
    jobs.push_back(std::move(job));
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) throw Error(ErrorCode::kUnavailable, "HTTP engine is shutting down");
    for (auto& j : jobs) impl_->queue.push_back(j.get());
  }
  curl_multi_wakeup(impl_->multi);
  std::unique_lock lock(group.mu);
  group.done.wait(lock, [&] { return group.pending == 0; });
  return results;
}

}  // namespace lazysnap::fetcher
