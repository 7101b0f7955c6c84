// Sources, the synchronous operators (shuffle, batch, repeat, cache, take) and Pipeline.
// map and prefetch (the threaded ones) live in dataset_async.cc.
#include "train/dataset.h"

#include <cstdio>
#include <cstring>
#include <mutex>

#include "support/error.h"

namespace tessera::train {

uint64_t Iterator::skip(uint64_t n) {
  Element e;
  uint64_t done = 0;
  while (done < n && next(&e)) ++done;
  return done;
}

uint64_t fingerprint(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Row i of t (dimension 0 removed). Numeric rows are views into t's storage (tensors are
// immutable, and `owner` keeps the storage alive), so slicing allocates no element bytes.
Tensor slice_row(const Tensor& t, const std::shared_ptr<const Tensor>& owner, int64_t i) {
  Shape shape(t.shape().begin() + 1, t.shape().end());
  if (t.dtype() != DType::kString) {
    const size_t bytes = static_cast<size_t>(num_elements(shape)) * dtype_size(t.dtype());
    return Tensor::borrow(t.dtype(), std::move(shape), static_cast<const char*>(t.raw()) + i * bytes, owner);
  }
  Tensor out(t.dtype(), shape);
  const int64_t n = out.num_elements();
  for (int64_t k = 0; k < n; ++k) out.strings()[k] = t.strings()[i * n + k];
  return out;
}

// Stacks equal-shaped tensors along a new dimension 0.
Tensor stack(const std::vector<const Tensor*>& parts, size_t component) {
  const Tensor& first = *parts[0];
  for (const Tensor* p : parts)
    TS_CHECK(p->dtype() == first.dtype() && p->shape() == first.shape(), "batch: component ",
             component, " differs between elements (", dtype_name(p->dtype()), shape_str(p->shape()),
             " vs ", dtype_name(first.dtype()), shape_str(first.shape()),
             "); pad or parse with a fixed shape first");
  Shape shape{static_cast<int64_t>(parts.size())};
  shape.insert(shape.end(), first.shape().begin(), first.shape().end());
  Tensor out(first.dtype(), shape);
  const int64_t n = first.num_elements();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (first.dtype() == DType::kString) {
      for (int64_t k = 0; k < n; ++k) out.strings()[i * n + k] = parts[i]->strings()[k];
    } else {
      std::memcpy(static_cast<char*>(out.mutable_raw()) + i * first.nbytes(), parts[i]->raw(),
                  first.nbytes());
    }
  }
  return out;
}

// ---- from_tensors ---------------------------------------------------------------------------

class TensorSlices : public Dataset {
 public:
  explicit TensorSlices(std::vector<Tensor> c) : components_(std::move(c)) {
    TS_CHECK(!components_.empty(), "from_tensors: no components");
    for (const auto& t : components_) owners_.push_back(std::make_shared<const Tensor>(t));
    for (size_t i = 0; i < components_.size(); ++i)
      TS_CHECK(components_[i].rank() >= 1 && components_[i].dim(0) == components_[0].dim(0),
               "from_tensors: component ", i, " has shape ", shape_str(components_[i].shape()),
               ", expected first dimension ", components_[0].rank() ? components_[0].dim(0) : -1);
  }
  int64_t cardinality() const override { return components_[0].dim(0); }
  std::string describe() const override {
    std::string d = "tensors(";
    for (const auto& c : components_) d += str_cat(dtype_name(c.dtype()), shape_str(c.shape()), ";");
    return d + ")";
  }
  std::unique_ptr<Iterator> make_iterator(uint64_t) const override {
    struct It : Iterator {
      const TensorSlices* ds;
      int64_t pos = 0;
      bool next(Element* out) override {
        if (pos >= ds->cardinality()) return false;
        out->clear();
        for (size_t c = 0; c < ds->components_.size(); ++c)
          out->push_back(slice_row(ds->components_[c], ds->owners_[c], pos));
        ++pos;
        return true;
      }
      uint64_t skip(uint64_t n) override {
        const uint64_t left = static_cast<uint64_t>(ds->cardinality() - pos);
        const uint64_t k = std::min(n, left);
        pos += static_cast<int64_t>(k);
        return k;
      }
    };
    auto it = std::make_unique<It>();
    it->ds = this;
    return it;
  }

 private:
  std::vector<Tensor> components_;
  std::vector<std::shared_ptr<const Tensor>> owners_;  // keep storage alive for row views
};

// ---- tfrecord -------------------------------------------------------------------------------

class TFRecordDataset : public Dataset {
 public:
  TFRecordDataset(std::vector<std::string> files, Compression c, OnCorrupt o)
      : files_(std::move(files)), compression_(c), on_corrupt_(o) {}
  std::string describe() const override {
    std::string d = str_cat("tfrecord(", compression_name(compression_), ";");
    for (const auto& f : files_) d += f + ";";
    return d + ")";
  }
  std::unique_ptr<Iterator> make_iterator(uint64_t) const override {
    struct It : Iterator {
      const TFRecordDataset* ds;
      size_t file = 0;
      std::unique_ptr<TFRecordReader> reader;
      size_t reported = 0;  // skipped records already reported
      std::string record;
      bool next(Element* out) override {
        while (file < ds->files_.size()) {
          if (!reader)
            reader = std::make_unique<TFRecordReader>(ds->files_[file], ds->compression_, ds->on_corrupt_);
          const bool got = reader->next(&record);
          // --on-corrupt skip: say what was dropped (file and offset) as soon as it is.
          for (; reported < reader->skipped().size(); ++reported)
            std::fprintf(stderr, "warning: skipped a corrupt record in '%s': %s\n", reader->path().c_str(),
                         reader->skipped()[reported].c_str());
          if (got) {
            out->assign(1, Tensor::string_scalar(record));
            return true;
          }
          reader.reset();
          reported = 0;
          ++file;
        }
        return false;
      }
    };
    auto it = std::make_unique<It>();
    it->ds = this;
    return it;
  }

 private:
  std::vector<std::string> files_;
  Compression compression_;
  OnCorrupt on_corrupt_;
};

// ---- shuffle --------------------------------------------------------------------------------

class ShuffleDataset : public Dataset {
 public:
  ShuffleDataset(DatasetPtr in, size_t buffer, uint64_t seed, bool reshuffle)
      : in_(std::move(in)), buffer_(buffer), seed_(seed), reshuffle_(reshuffle) {
    TS_CHECK(buffer_ >= 1, "shuffle: buffer size must be at least 1");
  }
  int64_t cardinality() const override { return in_->cardinality(); }
  std::string describe() const override {
    return str_cat("shuffle(", buffer_, ",", seed_, ",", reshuffle_, ",", in_->describe(), ")");
  }
  std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const override {
    struct It : Iterator {
      const ShuffleDataset* ds;
      std::unique_ptr<Iterator> in;
      bool in_done = false;
      std::vector<Element> buf;
      uint64_t state = 0;  // splitmix64 stream
      int64_t delivered = 0;
      uint64_t draw(uint64_t n) {  // uniform in [0, n) by multiply-shift
        state += 0x9e3779b97f4a7c15ull;
        const uint64_t r = splitmix64(state);
        return static_cast<uint64_t>((static_cast<unsigned __int128>(r) * n) >> 64);
      }
      bool next(Element* out) override {
        while (!in_done && buf.size() < ds->buffer_) {
          Element e;
          if (in->next(&e)) buf.push_back(std::move(e));
          else in_done = true;
        }
        if (buf.empty()) return false;
        const uint64_t k = draw(buf.size());
        *out = std::move(buf[k]);
        if (k + 1 != buf.size()) buf[k] = std::move(buf.back());
        buf.pop_back();
        ++delivered;
        return true;
      }
      uint64_t skip(uint64_t n) override {
        // Skipping the rest of a pass of known size needs no shuffling at all.
        const int64_t card = ds->cardinality();
        if (card >= 0 && static_cast<int64_t>(n) >= card - delivered) {
          const uint64_t left = static_cast<uint64_t>(card - delivered);
          in_done = true;
          buf.clear();
          delivered = card;
          return left;
        }
        return Iterator::skip(n);
      }
    };
    auto it = std::make_unique<It>();
    it->ds = this;
    it->in = in_->make_iterator(epoch);
    it->state = splitmix64(seed_ ^ splitmix64(reshuffle_ ? epoch : 0));
    return it;
  }

 private:
  DatasetPtr in_;
  size_t buffer_;
  uint64_t seed_;
  bool reshuffle_;
};

// ---- batch ----------------------------------------------------------------------------------

class BatchDataset : public Dataset {
 public:
  BatchDataset(DatasetPtr in, int64_t n, bool drop) : in_(std::move(in)), n_(n), drop_(drop) {
    TS_CHECK(n_ >= 1, "batch: size must be at least 1, got ", n_);
  }
  int64_t cardinality() const override {
    const int64_t c = in_->cardinality();
    if (c < 0) return c;
    return drop_ ? c / n_ : (c + n_ - 1) / n_;
  }
  std::string describe() const override {
    return str_cat("batch(", n_, ",", drop_, ",", in_->describe(), ")");
  }
  std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const override {
    struct It : Iterator {
      const BatchDataset* ds;
      std::unique_ptr<Iterator> in;
      bool next(Element* out) override {
        std::vector<Element> rows;
        rows.reserve(static_cast<size_t>(ds->n_));
        Element e;
        while (static_cast<int64_t>(rows.size()) < ds->n_ && in->next(&e)) rows.push_back(std::move(e));
        if (rows.empty() || (ds->drop_ && static_cast<int64_t>(rows.size()) < ds->n_)) return false;
        out->clear();
        for (size_t c = 0; c < rows[0].size(); ++c) {
          std::vector<const Tensor*> parts;
          for (const auto& r : rows) {
            TS_CHECK(r.size() == rows[0].size(), "batch: elements have different component counts");
            parts.push_back(&r[c]);
          }
          out->push_back(stack(parts, c));
        }
        return true;
      }
      uint64_t skip(uint64_t n) override {
        const uint64_t want = n * static_cast<uint64_t>(ds->n_);
        const uint64_t got = in->skip(want);
        const uint64_t full = got / static_cast<uint64_t>(ds->n_);
        return full + (got % static_cast<uint64_t>(ds->n_) != 0 && !ds->drop_ ? 1 : 0);
      }
    };
    auto it = std::make_unique<It>();
    it->ds = this;
    it->in = in_->make_iterator(epoch);
    return it;
  }

 private:
  DatasetPtr in_;
  int64_t n_;
  bool drop_;
};

// ---- repeat ---------------------------------------------------------------------------------

class RepeatDataset : public Dataset {
 public:
  RepeatDataset(DatasetPtr in, int64_t count) : in_(std::move(in)), count_(count) {}
  int64_t cardinality() const override {
    const int64_t c = in_->cardinality();
    if (count_ == 0 || c == 0) return 0;
    if (count_ < 0) return kInfiniteCardinality;
    return c < 0 ? c : c * count_;
  }
  std::string describe() const override { return str_cat("repeat(", count_, ",", in_->describe(), ")"); }
  std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const override {
    struct It : Iterator {
      const RepeatDataset* ds;
      uint64_t base = 0;  // epoch numbers of the passes: base + e
      int64_t e = 0;
      bool pass_empty = true;  // the current pass has produced nothing yet
      uint64_t pass_count = 0;  // elements taken from the current pass
      int64_t pass_size = -1;   // the input's cardinality, or learnt from a finished pass
      std::unique_ptr<Iterator> in;
      // Moves to the next pass; false when there is none (count reached, or an empty pass,
      // which would otherwise loop forever).
      bool advance() {
        if (pass_empty) return false;
        if (pass_size < 0) pass_size = static_cast<int64_t>(pass_count);  // passes are equal
        pass_count = 0;
        ++e;
        if (ds->count_ >= 0 && e >= ds->count_) return false;
        in = ds->in_->make_iterator(base + static_cast<uint64_t>(e));
        pass_empty = true;
        return true;
      }
      bool next(Element* out) override {
        if (!in) return false;
        for (;;) {
          if (in->next(out)) {
            pass_empty = false;
            ++pass_count;
            return true;
          }
          if (!advance()) {
            in.reset();
            return false;
          }
        }
      }
      uint64_t skip(uint64_t n) override {
        uint64_t done = 0;
        while (in && done < n) {
          // Whole passes of known size are skipped without creating them.
          const uint64_t got = in->skip(n - done);
          done += got;
          pass_count += got;
          if (got > 0) pass_empty = false;
          const int64_t card = pass_size >= 0 ? pass_size : static_cast<int64_t>(pass_count);
          if (done == n) break;
          if (card > 0 && pass_empty == false) {
            const uint64_t passes = (n - done) / static_cast<uint64_t>(card);
            uint64_t max_passes = passes;
            if (ds->count_ >= 0) max_passes = std::min<uint64_t>(passes, static_cast<uint64_t>(ds->count_ - e - 1));
            e += static_cast<int64_t>(max_passes);
            done += max_passes * static_cast<uint64_t>(card);
          }
          if (!advance()) {
            in.reset();
            break;
          }
        }
        return done;
      }
    };
    auto it = std::make_unique<It>();
    it->ds = this;
    // Nested repeats: give each (outer pass, inner pass) pair its own epoch number.
    it->base = epoch * 1000003ull;
    it->pass_size = in_->cardinality();
    if (count_ != 0) it->in = in_->make_iterator(it->base);
    return it;
  }

 private:
  DatasetPtr in_;
  int64_t count_;
};

// ---- cache ----------------------------------------------------------------------------------

class CacheDataset : public Dataset {
 public:
  explicit CacheDataset(DatasetPtr in) : in_(std::move(in)) {}
  int64_t cardinality() const override { return in_->cardinality(); }
  std::string describe() const override { return "cache(" + in_->describe() + ")"; }
  std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const override {
    struct It : Iterator {
      const CacheDataset* ds;
      uint64_t epoch;
      std::shared_ptr<const std::vector<Element>> cached;
      size_t pos = 0;
      std::unique_ptr<Iterator> in;
      std::vector<Element> filling;
      bool next(Element* out) override {
        if (cached) {
          if (pos >= cached->size()) return false;
          *out = (*cached)[pos++];
          return true;
        }
        if (!in) in = ds->in_->make_iterator(epoch);
        if (in->next(out)) {
          filling.push_back(*out);
          return true;
        }
        ds->publish(std::move(filling));
        return false;
      }
      uint64_t skip(uint64_t n) override {
        if (!cached) return Iterator::skip(n);  // must still fill the cache
        const uint64_t k = std::min<uint64_t>(n, cached->size() - pos);
        pos += k;
        return k;
      }
    };
    auto it = std::make_unique<It>();
    it->ds = this;
    it->epoch = epoch;
    std::lock_guard lock(mu_);
    it->cached = cache_;
    return it;
  }
  void publish(std::vector<Element> all) const {
    std::lock_guard lock(mu_);
    if (!cache_) cache_ = std::make_shared<const std::vector<Element>>(std::move(all));
  }

 private:
  DatasetPtr in_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<const std::vector<Element>> cache_;
};

// ---- take -----------------------------------------------------------------------------------

class TakeDataset : public Dataset {
 public:
  TakeDataset(DatasetPtr in, int64_t n) : in_(std::move(in)), n_(n) {}
  int64_t cardinality() const override {
    const int64_t c = in_->cardinality();
    if (c == kInfiniteCardinality) return n_;
    return c < 0 ? c : std::min(c, n_);
  }
  std::string describe() const override { return str_cat("take(", n_, ",", in_->describe(), ")"); }
  std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const override {
    struct It : Iterator {
      std::unique_ptr<Iterator> in;
      int64_t left;
      bool next(Element* out) override {
        if (left <= 0 || !in->next(out)) return false;
        --left;
        return true;
      }
      uint64_t skip(uint64_t n) override {
        const uint64_t got = in->skip(std::min<uint64_t>(n, static_cast<uint64_t>(std::max<int64_t>(left, 0))));
        left -= static_cast<int64_t>(got);
        return got;
      }
    };
    auto it = std::make_unique<It>();
    it->in = in_->make_iterator(epoch);
    it->left = n_;
    return it;
  }

 private:
  DatasetPtr in_;
  int64_t n_;
};

}  // namespace

DatasetPtr Dataset::from_tensors(std::vector<Tensor> components) {
  return std::make_shared<TensorSlices>(std::move(components));
}
DatasetPtr Dataset::tfrecord(std::vector<std::string> files, Compression c, OnCorrupt o) {
  return std::make_shared<TFRecordDataset>(std::move(files), c, o);
}
DatasetPtr Dataset::shuffle(size_t buffer, uint64_t seed, bool reshuffle) const {
  return std::make_shared<ShuffleDataset>(shared_from_this(), buffer, seed, reshuffle);
}
DatasetPtr Dataset::batch(int64_t n, bool drop_remainder) const {
  return std::make_shared<BatchDataset>(shared_from_this(), n, drop_remainder);
}
DatasetPtr Dataset::repeat(int64_t count) const {
  return std::make_shared<RepeatDataset>(shared_from_this(), count);
}
DatasetPtr Dataset::cache() const { return std::make_shared<CacheDataset>(shared_from_this()); }
DatasetPtr Dataset::take(int64_t n) const { return std::make_shared<TakeDataset>(shared_from_this(), n); }

// ---- Pipeline -------------------------------------------------------------------------------

Tensor PipelineState::to_tensor() const {
  return Tensor::from_vector<int64_t>({static_cast<int64_t>(elements), static_cast<int64_t>(fingerprint)});
}

PipelineState PipelineState::from_tensor(const Tensor& t) {
  TS_CHECK(t.dtype() == DType::kInt64 && t.num_elements() == 2,
           "input pipeline state must be int64 [2], got ", dtype_name(t.dtype()), shape_str(t.shape()));
  return {static_cast<uint64_t>(t.data<int64_t>()[0]), static_cast<uint64_t>(t.data<int64_t>()[1])};
}

Pipeline::Pipeline(DatasetPtr dataset)
    : dataset_(std::move(dataset)), fingerprint_(fingerprint(dataset_->describe())) {
  it_ = dataset_->make_iterator(0);
}

Pipeline::Pipeline(DatasetPtr dataset, const PipelineState& resume_from) : Pipeline(std::move(dataset)) {
  if (resume_from.fingerprint != fingerprint_)
    fail_code(ErrorCode::kFailedPrecondition,
              "input pipeline state was saved from a different pipeline (files, seeds, batch "
              "size or operators changed); cannot resume its position");
  const uint64_t got = it_->skip(resume_from.elements);
  if (got != resume_from.elements)
    fail_code(ErrorCode::kFailedPrecondition, "input pipeline ends after ", got,
              " elements; the saved position is ", resume_from.elements);
  stats_.elements = got;
}

bool Pipeline::next(Element* out) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool ok = it_->next(out);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats_.last_wait_seconds = dt;
  stats_.wait_seconds += dt;
  if (ok) ++stats_.elements;
  return ok;
}

}  // namespace tessera::train
