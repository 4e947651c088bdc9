"""Every sentence a homework set prints, in English and in Korean (the lectures' own terms: 합성곱,
출력 크기, 훈련해야 할 파라미터 개수, 가중치, 입력맵, 특성맵, 바이어스, 연산횟수, 수용 영역)."""

from __future__ import annotations

LANGUAGES = ("en", "ko")

_TEXT = {
    # layer names, as a sentence names them
    "conv": ("a convolution (Conv2d)", "합성곱(Conv2d) 층"),
    "maxpool": ("a max pooling layer (MaxPool2d)", "max pooling 층(MaxPool2d)"),
    "avgpool": ("an average pooling layer (AvgPool2d)", "average pooling 층(AvgPool2d)"),
    "batchnorm": ("a batch normalisation layer (BatchNorm2d)", "배치 정규화 층(BatchNorm2d)"),
    "linear": ("a fully connected layer (Linear)", "fully connected 층(Linear)"),
    # outsize
    "outsize.forward": ("A {size}x{size} input goes through {layer} with {settings}. What is the output size?",
                        "{size}x{size} 입력에 {settings}인 {layer}을 적용한다. 출력 크기(output size)는?"),
    "outsize.padding": ("A {size}x{size} input goes through {layer} with {settings}. Which padding keeps the "
                        "output {size}x{size}?",
                        "{size}x{size} 입력에 {settings}인 {layer}을 적용한다. 출력 크기를 입력과 같은 "
                        "{size}x{size}로 유지하려면 padding은 얼마인가?"),
    "outsize.stride": ("A {size}x{size} input goes through {layer} with {settings}. Which stride halves the "
                       "size, to {half}x{half}?",
                       "{size}x{size} 입력에 {settings}인 {layer}을 적용한다. 출력 크기를 절반인 {half}x{half}로 "
                       "줄이려면 stride는 얼마인가?"),
    "outsize.rule": ("output size = (in + 2p - k)/s + 1", "output size = (input_size + 2*padding - kernel_size)/"
                     "stride + 1 (padding을 적용한 후의 input_size로는 강의의 (input_size - kernel_size)/stride + 1)"),
    "outsize.rule_dilated": ("output size = (in + 2p - d*(k - 1) - 1)/s + 1: a dilated kernel spans d*(k - 1) + 1 "
                             "pixels",
                             "output size = (input_size + 2p - d*(k - 1) - 1)/s + 1: dilation d인 kernel은 "
                             "d*(k - 1) + 1 픽셀에 걸친다"),
    "outsize.floor": ("the division is not exact: rounded down (floor), as PyTorch does",
                      "나누어떨어지지 않으면 내림(floor), PyTorch와 같다"),
    "outsize.ceil": ("ceil_mode=True: rounded up, but a last window that would start in the padding is dropped",
                     "ceil_mode=True: 올림(ceil), 단 padding 안에서 시작하는 마지막 window는 버린다"),
    "outsize.keeps": ("with stride 1, out = in + 2p - d*(k - 1), so p = d*(k - 1)/2",
                      "stride 1이면 out = in + 2p - d*(k - 1)이므로 p = d*(k - 1)/2"),
    "outsize.halves": ("stride {s} is the only one that gives {half}", "{half}이 되는 stride는 {s}뿐이다"),
    # params
    "params.ask": ("How many trainable parameters does {layer} have: {code}?",
                   "{layer} {code}의 훈련해야 할 파라미터 개수는?"),
    "params.conv": ("(weights*input maps + bias)*feature maps", "(가중치*입력맵개수 + 바이어스)*특성맵개수"),
    "params.conv_groups": ("(weights*input maps per group + bias)*feature maps: each filter sees C_in/groups "
                           "= {c_in}/{groups} = {per} of the input maps",
                           "(가중치*그룹당 입력맵개수 + 바이어스)*특성맵개수: 각 필터는 C_in/groups = "
                           "{c_in}/{groups} = {per}개의 입력맵만 본다"),
    "params.nobias": ("no bias (bias=False): weights*input maps*feature maps",
                      "바이어스 없음(bias=False): 가중치*입력맵개수*특성맵개수"),
    "params.linear": ("(inputs + bias)*outputs", "연결개수 = (입력개수 + 바이어스)*출력개수"),
    "params.linear_nobias": ("inputs*outputs (bias=False)", "입력개수*출력개수 (bias=False)"),
    "params.batchnorm": ("one scale γ and one shift β per channel: (γ + β)*C; running_mean and running_var are "
                         "buffers, not trained",
                         "채널마다 γ(scale)와 β(shift) 하나씩: (γ + β)*C; running_mean, running_var는 훈련하지 "
                         "않는 buffer"),
    "params.pool": ("pooling has no weights: 0", "pooling 층에는 가중치가 없다: 0"),
    # macs
    "macs.ask": ("How many multiply-accumulates (MACs, bias excluded) does {layer} {code} perform on a "
                 "{size}x{size}x{c_in} input?",
                 "{size}x{size}x{c_in} 입력에 {layer} {code}을 적용할 때 연산횟수(곱셈-누적 MACs, "
                 "바이어스 제외)는?"),
    "macs.ask_linear": ("How many multiply-accumulates (MACs, bias excluded) does {code} perform on one input?",
                        "입력 하나에 {code}을 적용할 때 연산횟수(MACs, 바이어스 제외)는?"),
    "macs.conv": ("(H_out*W_out*C_out)*(K*K*C_in/groups), with H_out = {rule}",
                  "(출력 H*W*특성맵개수)*(K*K*입력맵개수/groups), 출력 크기 {rule}"),
    "macs.bottleneck": ("A {size}x{size}x{c_in} input goes through a {k}x{k} convolution to {c_out} maps "
                        "(padding keeps the size). How many multiplications does it take, and how many with a "
                        "1x1 convolution to {c_mid} maps first (the bottleneck layer)? How many times fewer?",
                        "{size}x{size}x{c_in} 입력에 {k}x{k} 합성곱으로 {c_out}개의 feature map을 만든다 "
                        "(padding으로 크기 유지). 연산횟수는? 먼저 1x1 합성곱으로 {c_mid}개로 줄인 뒤 "
                        "(bottleneck layer) {k}x{k} 합성곱을 하면? 몇 배 줄어드는가?"),
    "macs.separable": ("A {size}x{size}x{c_in} input goes through a {k}x{k} convolution to {c_out} maps "
                       "(padding keeps the size). How many multiplications does it take, and how many as a "
                       "depthwise {k}x{k} convolution (groups={c_in}) followed by a 1x1 convolution to {c_out} "
                       "maps (depthwise separable)? How many times fewer?",
                       "{size}x{size}x{c_in} 입력에 {k}x{k} 합성곱으로 {c_out}개의 feature map을 만든다 "
                       "(padding으로 크기 유지). 연산횟수는? depthwise {k}x{k} 합성곱(groups={c_in}) 다음 "
                       "1x1 합성곱으로 {c_out}개를 만들면(depthwise separable)? 몇 배 줄어드는가?"),
    "macs.direct": ("direct", "직접"),
    "macs.reduced": ("with the 1x1 reduction", "1x1 축소 후"),
    "macs.factored": ("depthwise + pointwise", "depthwise + pointwise"),
    "macs.ratio": ("ratio", "비율"),
    # receptive
    "receptive.ask": ("These layers are stacked, in order: {stack}. How large is the receptive field of one "
                      "output value (in input pixels, along one side)?",
                      "다음 층을 차례로 쌓는다: {stack}. 마지막 출력 한 값의 수용 영역(receptive field) "
                      "크기는 (입력 픽셀, 한 변)?"),
    "receptive.ask_jump": ("These layers are stacked, in order: {stack}. How large is the receptive field of one "
                           "output value, and how many input pixels apart are two neighbouring outputs?",
                           "다음 층을 차례로 쌓는다: {stack}. 마지막 출력 한 값의 수용 영역(receptive field) "
                           "크기와, 이웃한 두 출력 사이의 입력 픽셀 간격(jump)은?"),
    "receptive.ask_count": ("How many {k}x{k} convolutions with stride 1, stacked, see a {rf}x{rf} region of the "
                            "input, as one {rf}x{rf} convolution does (VGG's argument)?",
                            "stride 1인 {k}x{k} 합성곱을 몇 개 쌓으면 {rf}x{rf} 합성곱 하나와 같은 {rf}x{rf} "
                            "수용 영역을 보는가 (VGG의 논리)?"),
    "receptive.rule": ("r = r + d*(k - 1)*j, then j = j*s, from r = 1, j = 1",
                       "r = 1, j = 1에서 시작해 층마다 r = r + d*(k - 1)*j, j = j*s"),
    "receptive.count": ("each {k}x{k} stride-1 convolution adds {k} - 1 = {grow}: 1 + {grow}*n = {rf}, n = {n}",
                        "stride 1인 {k}x{k} 합성곱 하나가 {k} - 1 = {grow}씩 늘린다: 1 + {grow}*n = {rf}, "
                        "n = {n}"),
    # memory
    "memory.ask": ("A batch of {batch} inputs of {c_in}x{size}x{size} in {dtype} goes through {code}. How many "
                   "bytes does its output take?",
                   "{dtype}, batch {batch}, {c_in}x{size}x{size} 입력이 {code}을 통과한다. 출력(activation)이 "
                   "차지하는 메모리는 몇 byte인가?"),
    "memory.ask_net": ("A batch of {batch} inputs of {c_in}x{size}x{size} in {dtype} goes through {stack}. How "
                       "many bytes do the outputs of all these layers take together (each kept for backward)?",
                       "{dtype}, batch {batch}, {c_in}x{size}x{size} 입력이 {stack}을 차례로 통과한다. 모든 층의 "
                       "출력(activation)이 함께 차지하는 메모리는 몇 byte인가 (backward를 위해 모두 보관)?"),
    "memory.rule": ("bytes = N*C*H*W*(bytes per element: {bpe} for {dtype})",
                    "byte = N*C*H*W*(원소당 byte: {dtype}는 {bpe})"),
    # quantize
    "quantize.ask": ("{layer} {code} is quantized to int8 with torch.ao.quantization: each weight is stored in 1 byte "
                     "(one scale and zero point for the whole tensor, not counted here), the bias stays float32. How "
                     "many bytes do its parameters take before quantization (float32) and after?",
                     "{layer} {code}을 torch.ao.quantization으로 int8 양자화한다: 가중치는 원소당 1 byte (텐서 전체에 "
                     "scale과 zero point 하나, 여기서는 세지 않음), 바이어스는 float32로 남는다. 양자화 전(float32)과 "
                     "후에 파라미터가 차지하는 메모리는 각각 몇 byte인가?"),
    "quantize.ask_channel": ("{layer} {code} is quantized to int8 per output channel (FBGEMM's default): each weight "
                             "in 1 byte, a scale and a zero point for every output channel, which PyTorch keeps as "
                             "float64 and int64; the bias stays float32. How many bytes does it store before "
                             "quantization (float32 parameters) and after (weights, bias, scales and zero points)?",
                             "{layer} {code}을 출력 채널별(per-channel, FBGEMM 기본값)로 int8 양자화한다: 가중치는 "
                             "원소당 1 byte, 출력 채널마다 scale과 zero point가 하나씩 있고 PyTorch는 이를 float64와 "
                             "int64로 저장한다; 바이어스는 float32로 남는다. 양자화 전(float32 파라미터)과 후(가중치, "
                             "바이어스, scale, zero point)에 저장되는 메모리는 각각 몇 byte인가?"),
    "quantize.ask_fused": ("{code}: the convolution and its BatchNorm are fused (the BatchNorm folded into the "
                           "convolution's weights and a new bias), then quantized to int8 per output channel (scales "
                           "in float64, zero points in int64, the bias float32). How many bytes do both layers' "
                           "float32 parameters take, and the quantized layer (weights, bias, scales and zero points)?",
                           "{code}: 합성곱과 BatchNorm을 fuse한 뒤(BatchNorm은 합성곱의 가중치와 새 바이어스로 "
                           "접힌다) 출력 채널별로 int8 양자화한다 (scale은 float64, zero point는 int64, 바이어스는 "
                           "float32). 두 층의 float32 파라미터와 양자화된 층(가중치, 바이어스, scale, zero point)이 "
                           "차지하는 메모리는 각각 몇 byte인가?"),
    "quantize.rule": ("float32: 4 bytes a parameter; int8: 1 byte a weight, the bias in float32 (4 bytes)",
                      "float32: 파라미터당 4 byte; int8: 가중치당 1 byte, 바이어스는 float32 (4 byte)"),
    "quantize.per_channel": ("per output channel a scale (float64, 8 bytes) and a zero point (int64, 8 bytes)",
                             "출력 채널마다 scale (float64, 8 byte)과 zero point (int64, 8 byte)"),
    "quantize.folded": ("the BatchNorm's γ and β (2*{c}) fold into the weights and a new bias of {c}",
                        "BatchNorm의 γ, β (2*{c})는 가중치와 새 바이어스 {c}개로 접힌다"),
    "quantize.macs": ("(the MACs do not change: the same multiply-accumulates, on int8)",
                      "(연산횟수(MACs)는 그대로: 같은 곱셈-누적을 int8로 한다)"),
    # training
    "training.ask": ("{code}, in {dtype}, is trained with {optimizer}. Beside its activations, how many bytes do its "
                     "parameters, their gradients and the optimizer's state take, and in all (after the first step, "
                     "which makes the state)?",
                     "{code} ({dtype})를 {optimizer}로 학습한다. activation 외에 파라미터, 그 그래디언트, "
                     "옵티마이저 상태가 차지하는 메모리는 각각 몇 byte이고, 모두 합하면 몇 byte인가 (상태를 만드는 "
                     "첫 step 이후)?"),
    "training.rule": ("each parameter, its gradient and each state buffer in {dtype}: {bpe} bytes an element",
                      "파라미터, 그래디언트, 상태 버퍼는 모두 {dtype}: 원소당 {bpe} byte"),
    "training.rule_counter": ("; a step counter is a float32 scalar of 4 bytes per parameter tensor (a weight and a "
                              "bias a layer)",
                              "; step counter는 파라미터 텐서(층마다 가중치와 바이어스)마다 4 byte float32 스칼라"),
    "training.params": ("parameters", "파라미터"),
    "training.grads": ("gradients (one per parameter)", "그래디언트 (파라미터마다 하나)"),
    "training.state": ("optimizer state", "옵티마이저 상태"),
    "training.counters": ("step counters", "step counter"),
    "training.no_state": ("plain SGD keeps none: 0", "일반 SGD는 상태가 없다: 0"),
    "optimizer.sgd": ("plain SGD", "일반 SGD"),
    "optimizer.momentum": ("SGD with momentum (a momentum buffer)", "momentum SGD (momentum 버퍼)"),
    "optimizer.nesterov": ("SGD with Nesterov momentum (a momentum buffer)", "Nesterov momentum SGD (momentum 버퍼)"),
    "optimizer.adam": ("Adam (exp_avg and exp_avg_sq, and a step counter)",
                       "Adam (exp_avg, exp_avg_sq, step counter)"),
    "optimizer.adamw": ("AdamW (exp_avg and exp_avg_sq, and a step counter)",
                        "AdamW (exp_avg, exp_avg_sq, step counter)"),
    "optimizer.rmsprop": ("RMSprop (square_avg and a step counter)", "RMSprop (square_avg, step counter)"),
    "optimizer.adagrad": ("Adagrad (the sum of squared gradients and a step counter)",
                          "Adagrad (그래디언트 제곱의 합, step counter)"),
    # backward
    "backward.ask_one": ("{code} takes a {shape} input and {where}{frozen}. How many multiply-accumulates does the "
                         "backward pass compute (∂x and ∂W), and how many does a whole training step (forward + "
                         "backward)?",
                         "{code}에 {shape} 입력이 들어가고, 이 층은 {where}{frozen}. backward pass가 계산하는 "
                         "곱셈-누적(∂x와 ∂W)은 몇 번이고, 학습 step 전체(forward + backward)는 몇 번인가?"),
    "backward.ask_net": ("A {shape} batch goes through {code}; {frozen}. How many multiply-accumulates does the "
                         "backward pass compute (∂x and ∂W of every layer that needs them), and how many does a whole "
                         "training step (forward + backward)?",
                         "{shape} batch가 {code}를 지난다; {frozen}. backward pass가 계산하는 곱셈-누적(필요한 "
                         "층의 ∂x와 ∂W)은 몇 번이고, 학습 step 전체(forward + backward)는 몇 번인가?"),
    "backward.first": ("is the network's first layer (its input, the data, needs no gradient)",
                       "네트워크의 첫 층이다 (입력 데이터는 그래디언트가 필요 없다)"),
    "backward.after": ("comes after a layer that trains (its input needs a gradient)",
                       "학습되는 층 다음에 있다 (입력에 그래디언트가 필요하다)"),
    "backward.frozen_one": (", and is frozen (requires_grad=False)", "; 이 층은 고정되어 있다 (requires_grad=False)"),
    "backward.frozen": ("the first {which} frozen (requires_grad=False), the rest trained",
                        "앞의 {n}개 층은 고정(requires_grad=False), 나머지는 학습"),
    "backward.none_frozen": ("every layer trained", "모든 층을 학습"),
    "backward.rule": ("∂x = ∂y·Wᵀ and ∂W = xᵀ·∂y take as many multiply-accumulates as the forward each; ∂W only where "
                      "the layer trains, ∂x only where a layer before it trains (the input itself needs none)",
                      "∂x = ∂y·Wᵀ와 ∂W = xᵀ·∂y는 각각 forward와 같은 횟수의 곱셈-누적; ∂W는 학습하는 층에서만, ∂x는 "
                      "앞에 학습하는 층이 있을 때만 (입력 자체는 필요 없다)"),
    "backward.row": ("layer {i} {code}: forward {forward}; ∂x {dx}; ∂W {dw}",
                     "{i}번째 층 {code}: forward {forward}; ∂x {dx}; ∂W {dw}"),
    "backward.dx_yes": ("{n}", "{n}"),
    "backward.dx_no": ("0 (nothing before it trains)", "0 (앞에 학습하는 층이 없다)"),
    "backward.dw_yes": ("{n}", "{n}"),
    "backward.dw_no": ("0 (frozen)", "0 (고정)"),
    "backward.total": ("backward: {backward} ≈ {human}; training step: {step} ({ratio} x the forward)",
                       "backward: {backward} ≈ {human}; 학습 step: {step} (forward의 {ratio}배)"),
    # network
    "network.ask": ("Fill in every row of this network for a {c_in}x{size}x{size} input (batch 1): output shape "
                    "(C x H x W), trainable parameters, and MACs (multiply-accumulates of convolution and "
                    "linear layers, bias excluded; pooling, BatchNorm, ReLU and Flatten do none).",
                    "{c_in}x{size}x{size} 입력(batch 1)에 대해 이 네트워크의 모든 행을 채우시오: 출력 크기 "
                    "(C x H x W), 훈련해야 할 파라미터 개수, 연산횟수(MACs: 합성곱과 linear 층의 곱셈-누적, "
                    "바이어스 제외; pooling, BatchNorm, ReLU, Flatten은 0)."),
    "network.row": ("Network {net}, row {row}: {code} on {shape}: output shape, parameters, MACs",
                    "네트워크 {net}, {row}행: {shape} 입력의 {code}: 출력 크기, 파라미터 개수, MACs"),
    "network.total": ("total", "합계"),
    "network.same": ("the same shape; no parameters, no MACs", "크기 그대로; 파라미터 0, MACs 0"),
    # a module's parameters (attention, recurrent)
    "module.ask_params": ("How many trainable parameters does {code} have?", "{code}의 훈련해야 할 파라미터 개수는?"),
    # recurrent
    "recurrent.ask_macs": ("How many multiply-accumulates (MACs, bias excluded) does {code} perform on a sequence of "
                           "{t} steps (batch 1)?",
                           "{code}에 길이 {t}의 sequence(batch 1)를 넣을 때 연산횟수(곱셈-누적 MACs, 바이어스 "
                           "제외)는?"),
    "recurrent.rule": ("each of {cell}'s {g} gates has a weight on the input (H x I), one on the hidden state "
                       "(H x H) and two biases (b_ih, b_hh): {g}*(H*I + H*H + 2*H) a layer and direction",
                       "{cell}의 gate {g}개마다 입력에 대한 가중치(H x I), hidden state에 대한 가중치(H x H), "
                       "바이어스 두 개(b_ih, b_hh): 층과 방향마다 {g}*(H*I + H*H + 2*H)"),
    "recurrent.rule_nobias": ("each of {cell}'s {g} gates has a weight on the input (H x I) and one on the hidden "
                              "state (H x H), no biases (bias=False): {g}*(H*I + H*H) a layer and direction",
                              "{cell}의 gate {g}개마다 입력에 대한 가중치(H x I)와 hidden state에 대한 가중치"
                              "(H x H), 바이어스 없음(bias=False): 층과 방향마다 {g}*(H*I + H*H)"),
    "recurrent.bidirectional": ("bidirectional: D = 2 directions a layer, each with weights of its own",
                                "bidirectional: 층마다 방향 D = 2개, 방향마다 따로 가중치를 가진다"),
    "recurrent.stacked": ("a layer above the first takes the output of the one below: I = H*D = {width} wide",
                          "첫 층 위의 층은 아래 층의 출력을 입력으로 받는다: I = H*D = {width}"),
    "recurrent.steps": ("at each of the {t} steps every weight matrix of {cell}'s {g} gates multiplies one vector, "
                        "on the input (G*H*I) and on the hidden state (G*H*H); biases are additions, not MACs: "
                        "T*D*G*H*(I + H) a layer",
                        "{t}개의 step마다 {cell}의 gate {g}개의 모든 가중치 행렬이 벡터 하나를 곱한다: 입력에 "
                        "G*H*I, hidden state에 G*H*H; 바이어스는 덧셈일 뿐 MACs가 아니다: 층마다 T*D*G*H*(I + H)"),
    # attention
    "attention.params_rule": ("the Q, K and V projections (E x E, E x kdim, E x vdim, a bias of E each) and the "
                              "output projection (E x E + E); the {h} heads split E = {e} into {h} slices of {d} "
                              "and add no weights",
                              "Q, K, V projection(E x E, E x kdim, E x vdim, 각각 바이어스 E)과 output "
                              "projection(E x E + E); head {h}개는 E = {e}를 {d}씩 {h}조각으로 나눌 뿐 가중치를 "
                              "더하지 않는다"),
    "attention.ask_sdpa": ("Scaled dot-product attention with {h} heads of {d} numbers each (E = {e}) runs {l} "
                           "queries over {s} keys (batch 1). How many multiply-accumulates (MACs) do the scores "
                           "QKᵀ and the weighted sum PV take together?",
                           "head {h}개(각 {d}차원, E = {e})의 scaled dot-product attention에 query {l}개와 key "
                           "{s}개(batch 1)를 넣는다. score QKᵀ와 가중합 PV의 연산횟수(MACs)는 합해서 얼마인가?"),
    "attention.sdpa_rule": ("QKᵀ: h*L*S*d, then PV: h*L*S*d (softmax and the scaling are element-wise, no MACs)",
                            "QKᵀ: h*L*S*d, PV: h*L*S*d (softmax와 scaling은 원소별 연산, MACs 0)"),
    "attention.ask_forward": ("How many multiply-accumulates (MACs, bias excluded) does {code} perform in one "
                              "forward of {l} queries over {s} keys and values (batch 1)?",
                              "{code}에 query {l}개, key와 value {s}개(batch 1)를 넣는 forward 한 번의 연산횟수"
                              "(곱셈-누적 MACs, 바이어스 제외)는?"),
    "attention.forward_rule": ("the Q projection L*E*E, K's S*kdim*E, V's S*vdim*E, the attention h*L*S*d twice "
                               "(QKᵀ, PV), the output projection L*E*E",
                               "Q projection L*E*E, K projection S*kdim*E, V projection S*vdim*E, attention "
                               "h*L*S*d 두 번(QKᵀ, PV), output projection L*E*E"),
    # sets
    "set.title": ("Homework: {what}", "과제: {what}"),
    "set.answers": ("Answer key: {what}", "정답: {what}"),
    "set.made": ("seed {seed}, level {level}; made by `{command}`",
                 "seed {seed}, level {level}; `{command}`로 생성"),
    "set.answer": ("Answer", "답"),
    "set.working": ("Working", "풀이"),
    "kind.outsize": ("output size", "출력 크기(output size)"),
    "kind.params": ("trainable parameters", "훈련해야 할 파라미터 개수"),
    "kind.macs": ("multiply-accumulates (MACs)", "연산횟수(MACs)"),
    "kind.receptive": ("receptive field", "수용 영역(receptive field)"),
    "kind.memory": ("activation memory", "activation 메모리"),
    "kind.network": ("a network, row by row", "네트워크의 각 층"),
    "kind.attention": ("attention (nn.MultiheadAttention)", "어텐션(nn.MultiheadAttention)"),
    "kind.recurrent": ("recurrent layers (RNN, GRU, LSTM)", "순환 층(RNN, GRU, LSTM)"),
    "kind.quantize": ("the bytes of a layer, float32 and int8", "층의 메모리, float32와 int8 양자화"),
    "kind.backward": ("the backward pass: which gradients, how many MACs", "backward pass: 어떤 그래디언트를, 몇 번의 MACs로"),
    "kind.training": ("the memory of training: parameters, gradients, optimizer state",
                      "학습 메모리: 파라미터, 그래디언트, 옵티마이저 상태"),
    "column.layer": ("Layer", "층"),
    "column.shape": ("Output shape", "출력 크기"),
    "column.params": ("Parameters", "파라미터 개수"),
    "column.macs": ("MACs", "MACs"),
}


def say(lang: str, key: str, **values) -> str:
    """The sentence ``key`` in ``lang`` with ``values`` filled in."""
    english, korean = _TEXT[key]
    return (korean if lang == "ko" else english).format(**values)
