"""The demo's words, written by this team: places, phrasings around the catalogue, storylines, replies.

Nothing here comes from citizen data. Estate, shop and road names are invented (any likeness to a real
one is chance); street names are the catalogue's own (``config/data/jurisdictions.yaml``), so every
address resolves to the jurisdiction and street it was written for (``tests/unit/test_demo_scenario.py``
checks that). The ticket bodies themselves are built from the catalogue's phrasings and details of the
matter (also written by this team) wrapped in the openings and closings below.
"""

from __future__ import annotations

# --- places -------------------------------------------------------------------------------------------
# street name -> invented estates, lanes, markets in it. Names avoid other streets' aliases (北塘, 古林 ...)
# so that the street named in the address is the one the resolver finds.
ESTATES: dict[str, dict[str, tuple[str, ...]]] = {
    "BH": {
        "塘沽街道": ("滨河东里", "解放路步行街", "福州道东里"),
        "杭州道街道": ("金江园", "紫云里", "向阳新村"),
        "新河街道": ("船厂宿舍", "新河庄园", "河滨西里"),
        "大沽街道": ("海河湾花园", "烟台道小区", "渤海里"),
        "新北街道": ("欣嘉园", "北苑新村", "蓝庭雅居"),
        "北塘街道": ("北塘古镇", "观澜苑", "海燕里"),
        "胡家园街道": ("春和嘉园", "农贸市场南侧", "兴盛里"),
        "新港街道": ("海韵花园", "港航里", "四号路平房区"),
        "新村街道": ("芳华里", "河北路菜市场", "宁海里"),
        "汉沽街道": ("东风里", "新开路商业街", "盐场宿舍"),
        "寨上街道": ("惠馨园", "寨上新苑", "铁西路平房"),
        "茶淀街道": ("茶东村", "葡萄小镇", "茶西里"),
        "大港街道": ("迎宾街福华里", "学府苑", "世纪嘉园"),
        "古林街道": ("上古林村", "古林嘉园", "建安里"),
        "海滨街道": ("海滨花园", "港东新城", "幸福里"),
        "新城镇": ("新城东村", "欣园里", "新城镇农贸市场"),
        "杨家泊镇": ("杨家泊村", "付庄村"),
        "太平镇": ("太平村", "崔庄子村"),
        "小王庄镇": ("小王庄村", "刘岗庄村"),
        "中塘镇": ("中塘村", "甜水井村"),
    },
    "TEDA": {
        "泰达街道": ("泰丰家园", "翠亨村", "华纳公寓", "贻海园", "滨海花园", "泰达时尚广场"),
    },
    "DL": {
        "张贵庄街道": ("跃进里", "詹庄子村", "东兴家园"),
        "丰年村街道": ("丰年里", "先锋东路小区", "津塘路底商"),
        "万新街道": ("成林雅苑", "万新村", "程林里"),
        "无瑕街道": ("无瑕花园", "利津路小区", "新中村"),
        "新立街道": ("新立村", "宝元村", "新立家园"),
        "华明街道": ("华明家园", "胡张庄还迁房", "弘顺园"),
        "金钟街道": ("金钟新市镇", "徐庄子村", "欢坨村"),
        "军粮城街道": ("军粮城新市镇", "刘台村", "示范镇东区"),
        "金桥街道": ("金桥工业园", "金桥家园"),
        "华新街道": ("华新家园", "登州路小区"),
        "东丽湖街道": ("湖景雅苑", "东丽湖万科城", "温泉度假村"),
    },
}
# How people write the district before the street; TEDA addresses often name an avenue instead.
DISTRICT_PREFIXES: dict[str, tuple[str, ...]] = {
    "BH": ("滨海新区", "滨海新区", "天津市滨海新区", ""),
    "TEDA": ("经开区", "开发区", "天津开发区"),
    "DL": ("东丽区", "东丽区", "天津市东丽区"),
}
TEDA_AVENUES = ("第一大街", "第二大街", "第三大街", "第五大街", "第七大街", "第九大街", "第十一大街",
                "第十三大街")
SPOTS = ("", "", "", "南门", "北门", "底商", "门口", "对面", "东侧", "西侧路边", "附近")
# A building and door make each random address its own place: the supervision links tickets by place,
# and the demo's 重复件 and 联合执法 cases should be the scripted ones, not accidents of a short list.
BUILDINGS = ("{n}号楼", "{n}号楼{m}门", "{n}栋", "{n}号楼{m}单元", "{n}号")

# --- ticket bodies ---------------------------------------------------------------------------------------
OPENINGS_CALL = (
    "喂，你好，", "你好，我想反映个事，", "您好，麻烦给记一下，", "你好，我要投诉，", "同志你好，",
    "您好，我是附近的居民，", "喂，是12345吗？", "你好，我想问一下，", "麻烦您了，我反映个情况，",
)
OPENINGS_WEB = ("", "", "反映问题：", "尊敬的领导：", "您好！", "关于{estate}的问题：")
WHERE = (
    "我家住{estate}，", "我们{estate}这边，", "{estate}{spot}", "在{estate}{spot}，", "就是{estate}那儿，",
    "{estate}{spot}这块，",
)
DEMANDS = (
    "希望有关部门尽快处理。", "麻烦派人来看看。", "请相关部门管一管。", "处理完了给我回个电话。",
    "能不能彻底解决一下？", "希望早点给个答复。", "谢谢！", "拜托你们了。", "请尽快落实。",
    "这个事拖了很久了，希望重视。",
)
CONSULT_ASKS = (
    "想咨询一下这个怎么办理？", "需要带什么材料，去哪儿办？", "想问问现在是什么政策？",
    "麻烦告诉我具体找哪个部门。", "想了解一下流程和时间。",
)
EMOTIONS = ("", "", "", "真是没办法了，", "实在受不了了，", "老人孩子都受影响，", "说了好几次了，")

# --- storylines (hand-written tickets) -----------------------------------------------------------------------
# 重复件, the same caller three times in one week: a labourer whose wages are not paid.
REPEAT_CALLER = (
    "我在金桥工业园一个工地干活，包工头拖欠我们十几个人三个月的工资，一共七万多块钱，打电话不接，"
    "人也找不着，家里老人看病等着用钱，求政府帮帮我们农民工。",
    "我周一打过电话反映金桥工业园工地欠薪的事，到现在没人联系我，包工头还是躲着不见，工友们天天在工地"
    "门口等，麻烦你们再催一催。",
    "这是我第三次打了，金桥工业园那个工地欠我们的工资还是一分没给，说是在查，一直没有结果，我们实在没办法"
    "了，请领导重视一下。",
)
# The caller words the place a little differently each time (so only the caller links them, not the place).
REPEAT_CALLER_ADDRESSES = ("东丽区金桥街道金桥工业园", "东丽区金桥街道金桥工业园3号地块工地", "东丽区金桥工业园建筑工地")

# 重复件, one address and one matter, three different callers: a barbecue's fumes.
REPEAT_PLACE = (
    "海韵花园12号楼底下那家烧烤店，每天晚上油烟往楼上灌，窗户都不敢开，屋里全是烧烤味，孩子咳嗽好几天了，"
    "请环保部门来查一查油烟。",
    "我是海韵花园12号楼三楼的住户，楼下饭店的排烟管道就在我家窗户底下，油烟净化器从来不开，墙都熏黑了，"
    "希望来测一测油烟排放。",
    "还是海韵花园12号楼底商烧烤店油烟扰民的问题，邻居们都反映过了，到现在还是照样排油烟，晚上十二点还在"
    "冒烟，请尽快处理。",
)
REPEAT_PLACE_ADDRESS = "滨海新区新港街道海韵花园12号楼底商"

# 联合执法: one restaurant, three different problems, three different agencies within days.
JOINT_PLACE = (
    "第三大街88号海之味烧烤城后厨特别脏，昨天在那吃完饭一家三口都上吐下泻，菜里还吃出了头发，怀疑食材"
    "不新鲜，要求市场监管部门查一查食品安全。",
    "第三大街88号海之味烧烤城晚上把桌子、烤炉全摆到人行道上，占道经营，走路只能绕到机动车道，"
    "城管来了就收，走了又摆。",
    "海之味烧烤城把消防通道堵死了，后门堆满了纸箱和煤气罐，楼上住户说着火了根本跑不出去，"
    "请消防部门来检查。",
)
JOINT_ADDRESS = "经开区泰达街道第三大街88号海之味烧烤城"

# Urgent (紧急) and utility (水电气热) tickets: short limits that the sped-up clock runs through quickly.
URGENT = (
    ("GY-003", "楼道里燃气味特别大，好像是哪家燃气管漏了，我们已经把窗户都打开了，请燃气公司赶紧派人来！"),
    ("ZJ-003", "我们楼的电梯卡在七楼和八楼中间了，里面困着一个老人和一个孩子，物业电话打不通，快来人！"),
    ("CG-010", "路口的井盖没了，一个大黑窟窿，天黑根本看不见，刚才有个骑电动车的差点掉进去，赶紧来处理！"),
)
UTILITIES = (
    ("GY-004", "暖气已经开始供了，可我家暖气片一点都不热，屋里才十四五度，老人冻得直哆嗦，供热站电话一直占线。"),
    ("GY-004", "整个单元的暖气都不热，摸着冰凉，问物业说是管道有空气，到现在也没人来放气。"),
    ("GY-001", "我们小区从早上就停水了，没有任何通知，到现在还没来水，做饭上厕所都成问题。"),
    ("GY-005", "我们这片从下午三点就停电了，冰箱里的东西都要坏了，也没看到检修通知，什么时候能来电？"),
    ("GY-001", "高层水压特别低，一到早晚用水高峰十几楼就没水，热水器都打不着火。"),
)

# A ticket two agencies turn down in a row before the third takes it (ping-pong in the making).
BOUNCED = (
    "小区门口的路面塌了个大坑，旁边的井盖也松动了，一踩就响，晚上已经有两个骑车的摔倒了，"
    "到底归谁管？物业说不归他们，社区也说管不了。"
)

# --- the agencies' side ------------------------------------------------------------------------------------
REPLIES = (
    "经现场核查，反映情况属实，已责令当事单位立即整改，并将持续跟踪检查。已电话告知来电人处理结果。",
    "已联系相关单位当日完成维修，恢复正常使用，来电人表示认可。",
    "执法人员已到现场检查，对经营者进行了批评教育并下达整改通知书，后续将加强巡查。",
    "已向来电人详细解释相关政策及办理流程，来电人表示清楚。",
    "经调查核实，相关企业承诺于本月底前整改完毕，我单位将督促落实并回访。",
    "执法人员现场检查未发现所述问题，已留存检查记录，并告知来电人如再发现可随时反映。",
    "已协调属地社区和物业共同处理，问题已解决，来电人表示满意。",
    "已立案调查，依法责令停止违法行为，调查结果将按程序告知来电人。",
)
EXTENSIONS = (
    "涉及多个产权单位，需协调后才能实施维修，申请延期。",
    "需委托第三方检测机构出具检测报告，报告出具前无法作出处理结论，申请延期。",
    "涉及总包、分包多家单位，正在调查取证，申请延期。",
    "维修需要的配件需从厂家调货，申请延期。",
)
UNSATISFIED = (
    "问题根本没解决，还是老样子。", "只打了个电话，没人来现场看。", "说是整改了，过两天又恢复原样了。",
)
REOPEN = "来电人回访不满意，表示问题仍未解决，重新交办。"
CLOSE = "来电人对处理结果表示满意，办结归档。"

# Returns (退单): reason code, legal basis, explanation. ``{law}`` is a law the catalogue gives the ticket's
# matter, ``{jurisdiction}`` its district: the agency cites why the power lies with another body.
RETURNS = (
    ("NOT_OUR_DUTY", "{law}；{jurisdiction}权责清单未将该项职权列入本单位",
     "经核实，诉求内容不属于本单位法定职责，依权责清单应由其他部门办理，请重新派单。"),
    ("NOT_OUR_DUTY", "{jurisdiction}权责清单：该事项的行政检查和行政处罚不由本单位行使；{law}",
     "我单位无此项执法权限，建议改派有管辖权的部门。"),
    ("CIVIL_DISPUTE", "《中华人民共和国民法典》；{law}",
     "经了解，该诉求系双方之间的民事纠纷，建议当事人协商、申请调解或通过诉讼解决，不属于本单位行政职责。"),
)
